#!/usr/bin/env bash
# Mutation-fuzzes tinylm's parsers of untrusted input (examples/fuzz.rs, stable Rust):
# GGUF, safetensors, torch checkpoints (zip + pickle), tiktoken pickles, tokenizer.json,
# the manifest and Modelfiles.
#
# usage: scripts/fuzz.sh [MINUTES] [TARGET...]   (default: 10 minutes split over all targets)
#   FUZZ_SEED=N    seed of the mutation stream (default: the date, so runs differ)
# Panics are saved under fuzz/findings/ and reported; a target that crashes the process
# (abort, out of memory under the 4 GiB limit) or hangs is reported with its last progress
# line, from which examples/fuzz.rs --seed S --from N replays it. Exit status 1 on findings.
set -uo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
shift || true
cargo build --release -q --example fuzz || exit 2
bin="${CARGO_TARGET_DIR:-target}/release/examples/fuzz"
mapfile -t targets < <(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else "$bin" list; fi)
seed="${FUZZ_SEED:-$(date +%s)}"
secs=$(( minutes * 60 / ${#targets[@]} ))
[ "$secs" -ge 1 ] || secs=1
log=$(mktemp)
status=0
echo "fuzzing ${#targets[@]} targets for ${secs}s each, seed $seed"
for t in "${targets[@]}"; do
  # Memory bombs must fail inside tinylm's budgets, not take the machine down.
  ( ulimit -v 4194304; timeout $(( secs + 60 )) "$bin" "$t" --secs "$secs" --seed "$seed" ) 2>"$log"
  rc=$?
  grep '^FINDING' "$log"
  case $rc in
    0) ;;
    1) status=1 ;;
    124) echo "HANG $t: no result $((secs + 60))s after start; $(grep '^progress' "$log" | tail -1)"; status=1 ;;
    *) echo "CRASH $t: exit $rc; $(grep '^progress' "$log" | tail -1)"; tail -3 "$log"; status=1 ;;
  esac
done
rm -f "$log"
exit $status
