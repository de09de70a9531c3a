#!/usr/bin/env bash
# No-op build benchmark: 3 models x 3 quants over ~100 MB of GGUF inputs.
# Builds once (cold), then times no-op builds with hyperfine if present, else a loop.
# Goal (issue 2): a no-op `tinylm build` takes <= 30 ms wall.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN="$PWD/target/release/tinylm"
WORK="${BENCH_DIR:-/tmp/tinylm-bench-noop}"
QUANTS="${QUANTS-\"f16\", \"q8_0\", \"q4_k_m\"}"
rm -rf "$WORK" && mkdir -p "$WORK/models"
for i in 1 2 3; do
  python3 scripts/bench/make_gguf.py "$WORK/models/m$i.gguf" 42 "$i"
done
touch -d '1 minute ago' "$WORK"/models/*.gguf
cat > "$WORK/tinylm.toml" <<TOML
[project]
name = "bench"
version = "1.0.0"

[defaults]
quants = [$QUANTS]
template = "chat"

[templates.chat]
template = "{{ .Prompt }}"
parameters = { stop = ["</s>"] }

[models.m1]
source.gguf = "models/m1.gguf"
[models.m2]
source.gguf = "models/m2.gguf"
[models.m3]
source.gguf = "models/m3.gguf"

[releases.all]
models = ["m1", "m2", "m3"]
TOML
du -sh "$WORK/models"
echo "== cold build"
/usr/bin/time -f "cold: %e s wall, %M KB max RSS" "$BIN" -C "$WORK" -q build
"$BIN" -C "$WORK" --json build | python3 -c 'import json,sys; r=json.load(sys.stdin); print("no-op check:", r["actions"], "actions,", r["run"], "run,", r["hashed_files"], "files hashed")'
echo "== no-op build"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 3 --runs 50 "$BIN -C $WORK -q build"
else
  python3 - "$BIN" "$WORK" <<'PY'
import subprocess, sys, time, statistics
bin, work = sys.argv[1], sys.argv[2]
ts = []
for _ in range(53):
    t = time.perf_counter(); subprocess.run([bin, "-C", work, "-q", "build"], check=True); ts.append(time.perf_counter() - t)
ts = sorted(ts[3:])
print(f"no-op: median {statistics.median(ts)*1e3:.1f} ms, min {ts[0]*1e3:.1f} ms, max {ts[-1]*1e3:.1f} ms over {len(ts)} runs")
PY
fi
