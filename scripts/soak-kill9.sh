#!/usr/bin/env bash
# kill -9 soak: builds the demo over and over, killing each build at a random moment (kill -9,
# or SIGINT one time in four), then
# checks what a crash must never leave behind:
#   - corrupt cache objects (every object rehashed by `tinylm verify`),
#   - corrupt placed outputs (every output tinylm recorded, rehashed),
#   - a next build that fails, or temp files that build leaves in the project.
# Inputs change between rounds (a template parameter, dropped action records, a deleted
# output directory) so killed builds are busy converting, quantizing and placing.
#
# Usage: scripts/soak-kill9.sh [SECONDS=180]   (TINYLM_BIN to use another binary)
# Prints one summary line; exit 1 if anything corrupt or broken was found.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-180}"
if [[ -z "${TINYLM_BIN:-}" ]]; then
  cargo build -q
  TINYLM_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tinylm"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tinylm-soak.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -r tinylm.toml examples "$WORK/"
cd "$WORK"
unset TINYLM_CACHE

count_json() { # FIELD: length of a list (or the number) in the JSON on stdin
  python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(len(v) if isinstance(v, list) else v)' "$1"
}

rounds=0 kills=0 interrupts=0 finished=0 corrupt_objects=0 corrupt_outputs=0 objects_checked=0
failed_rebuilds=0 leftover_temps=0
end=$((SECONDS + DURATION))
while ((SECONDS < end)); do
  rounds=$((rounds + 1))
  case $((RANDOM % 5)) in
    0) sed -i "s/num_ctx = [0-9]*/num_ctx = $((RANDOM % 4096 + 1))/" tinylm.toml ;;
    1 | 2) rm -rf .tinylm/cache/ac ;;
    3) rm -rf dist ;;
    4) rm -rf .tinylm/cache ;;
  esac
  "$TINYLM_BIN" -q build -j $((RANDOM % 4 + 1)) >/dev/null 2>&1 &
  pid=$!
  # The demo builds in 0.05-0.25 s (debug binary): kill somewhere in that window.
  sleep "$(printf '0.%03d' $((RANDOM % 250)))"
  # One round in four is a Ctrl-C (SIGINT: stop at the next action boundary) instead.
  if ((RANDOM % 4 == 0)); then sig=INT; else sig=KILL; fi
  kill -s "$sig" "$pid" 2>/dev/null || true
  status=0
  wait "$pid" 2>/dev/null || status=$?
  # 137 = killed by SIGKILL mid-build, 130 = stopped by SIGINT; else the build ended first.
  if ((status == 137)); then
    kills=$((kills + 1))
  elif ((status == 130)); then
    interrupts=$((interrupts + 1))
  else
    finished=$((finished + 1))
  fi
  report="$("$TINYLM_BIN" --json verify 2>/dev/null || true)"
  c="$(count_json corrupt <<<"$report")"
  o="$(count_json corrupt_outputs <<<"$report")"
  n="$(count_json objects <<<"$report")"
  corrupt_objects=$((corrupt_objects + c))
  corrupt_outputs=$((corrupt_outputs + o))
  objects_checked=$((objects_checked + n))
  if ((c + o > 0)); then
    echo "round $rounds: $c corrupt objects, $o corrupt outputs" >&2
    echo "$report" >&2
  fi
  # Every few rounds, the build after a kill must complete and leave no temp file behind.
  if ((rounds % 5 == 0)); then
    if ! "$TINYLM_BIN" -q build >/dev/null 2>"$WORK/err"; then
      failed_rebuilds=$((failed_rebuilds + 1))
      echo "round $rounds: the build after a kill failed:" >&2
      cat "$WORK/err" >&2
    fi
    t="$(find . -name '*.tinylm-tmp-*' -not -path './.tinylm/cache/tmp/*' | wc -l)"
    if ((t > 0)); then
      echo "round $rounds: temp files left after a complete build:" >&2
      find . -name '*.tinylm-tmp-*' -not -path './.tinylm/cache/tmp/*' >&2
    fi
    leftover_temps=$((leftover_temps + t))
  fi
done

echo "soak: ${DURATION}s, $rounds rounds, $kills builds killed with -9, $interrupts stopped by SIGINT," \
  "$finished finished first;" \
  "$objects_checked object checks: $corrupt_objects corrupt objects, $corrupt_outputs corrupt outputs," \
  "$failed_rebuilds failed rebuilds, $leftover_temps leftover temp files"
((corrupt_objects + corrupt_outputs + failed_rebuilds + leftover_temps == 0))
