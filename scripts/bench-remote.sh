#!/usr/bin/env bash
# Benchmark: a cold build vs a fresh machine restoring everything from a remote cache.
#
# The project is the demo (tinylm.toml) plus the ~500M-parameter Llama (HF folder made by
# scripts/bench/make_llama_500m.py) with f16, q8_0 and q4_k_m. The remote is a local nginx
# with WebDAV (Bazel HTTP cache protocol) on 127.0.0.1.
#
#   1. cold:    empty cache, no remote: converts and quantizes everything;
#   2. push:    `tinylm cache push` of that cache to the remote;
#   3. restore: a fresh copy of the project and an empty cache build with the remote: nothing
#               runs, every output is downloaded, verified (sha256 + blake3) and placed;
#   4. restore (demo only): the same for the two tiny models, to show peak RSS does not grow
#               with file size (transfers are streamed).
#
#   scripts/bench-remote.sh
#
# Measured at 05541d8 on the 2-core dev machine, load average 8-10 from other builds:
#   cold 26.1 s / 1208 MiB RSS; push 7.4 s / 22 MiB (1763 MiB up); restore 5.6 s / 961 MiB
#   (1763 MiB down, 0 run, dist/ identical); demo-only restore 0.42 s / 14.7 MiB.
# Measured after the merge into main (e9e5ab4), same machine idle (load ~2): cold 5.0-6.7 s /
#   1.2-1.4 GiB; push 2.5-2.7 s / 21 MiB; restore 2.84-2.91 s / 962 MiB with memory-mapped
#   source hashing, 37-38 MiB since sources are hashed in 16 MiB reads (same wall time).
# Profile of that restore (perf, 560bb17): 34% of CPU samples the kernel copying downloaded bytes
#   into the page cache, 17% sha256, 9% blake3, 12% socket copies; network, write and hashes took
#   turns, and the graph's order serialized the downloads (f16, then the quants).
# After pipelined O_DIRECT downloads and --locked prefetch (fe8e8e6), side by side with 560bb17,
#   load average 8-9 from other engineers' builds (2 cores):
#   560bb17: cold 19.3 s; restore 7.97 s / 38 MiB (2.4x); repeated restores 6.7-9.7 s
#   fe8e8e6: cold 22.8 s; restore 5.08 s / 51 MiB (4.5x); repeated restores 3.9-5.8 s
#   (CPU of one restore: 3.8 s, of which sha256 ~1.1 s).
#   Again at d7a9c8f, two rounds each, alternating with 560bb17, load average 8.6-14.4:
#   560bb17: cold 22.7 / 19.9 s; restore 6.64 / 8.77 s, 38-39 MiB (3.4x / 2.3x)
#   d7a9c8f: cold 19.6 / 16.3 s; restore 4.05 / 4.54 s, 50 MiB (4.8x / 3.6x); demo-only
#   restore 0.38-0.40 s / 21-23 MiB (RSS follows the number of parallel transfers, not size).
# The floor, same load, CPU seconds (wall is meaningless at load 8): sha256 of the three GGUFs
#   (1.85 GB, `openssl dgst -sha256`, SHA-NI) 1.06 s user; blake3 of every object (`tinylm
#   verify`) 0.75 s user; the sources' blake3 on a fresh cache (`tinylm status`) 0.45 s; a
#   loopback GET of the 953 MiB f16 (`curl -o /dev/null`) 0.36 s sys. That is ~2.6 s of CPU
#   that no verified restore avoids (sha256 and blake3 of every byte before it enters the CAS),
#   >= 1.3 s on two idle cores, and the f16's sha256 alone is 0.57 s of serial work. Against an
#   idle cold build of 5.0-6.7 s, 10x is out of reach here; ~4-5x is the ceiling.
# After the lookahead prefetch, largest-first transfers and grouped fsyncs (8ff34ad), against
#   4cb6aad, restores of the same remote interleaved old/new, load average 7.4-9.0 (4 engineers
#   on 2 cores), CPU = user + sys of the restoring process (/usr/bin/time):
#   --locked    4cb6aad: 6.53 / 5.51 s wall, 4.09 / 4.09 s CPU, 51-52 MiB
#               8ff34ad: 4.60 / 4.17 s wall, 3.66 / 3.72 s CPU, 52 MiB
#   no --locked 4cb6aad: 5.36 / 5.10 s wall, 4.36 / 4.30 s CPU (downloads follow the graph:
#                        the quants only start once the f16 is in)
#               8ff34ad: 4.92 / 5.33 s wall, 3.93 / 4.10 s CPU (keys from records: all start
#                        at once)
#   full script at 8ff34ad, load 8.1-8.6: cold 24.95 s; push 8.28 s; restore 4.55 s / 51.6 MiB
#   (5.5x); demo-only restore (no --locked) 0.15 s (was 0.57 s: its small objects' fsyncs ran
#   one by one on the async threads and each action waited for its upstream download).
#   perf of one --locked restore (4.24 s CPU sampled; was 4.68 s): sha256 28%, blake3 19%,
#   kernel socket copies ~9%, copying network chunks into aligned blocks 7%, the source's
#   read() copy ~5%, scheduling and softirqs ~10%.
# The measured floor: sha256 1.06 s + blake3 0.75 s + the sources' blake3 0.45 s + loopback
#   receive of 1.85 GB ~0.7 s (0.36 s per 953 MiB) = ~2.96 s of CPU no verified restore avoids;
#   on 2 idle cores that is >= 1.48 s of wall, plus ~0.1 s of serial start and tail (reading the
#   plan, placing dist/, the lock and roots): a floor of ~1.6 s. The restore's 3.7 s of CPU is
#   ~1.85 s of wall on 2 idle cores, ~15-25% above that floor. The rest is copying (network
#   chunks into aligned blocks for O_DIRECT, read() of the sources) and thread hand-offs.
#   Against the idle cold build (8.3 s), the floor allows ~5x: 10x would need a restore of
#   0.83 s, below what hashing every byte with both required hashes costs on 2 cores.
# Idle after the merge (688ceac, load 1.2-1.6): cold 6.93 s / 1309 MiB (faster convert), push
#   3.12 s, restore 2.21 s / 50.5 MiB (1763 MiB down, 0 run, dist/ identical) = 3.1x; demo-only
#   restore 0.06 s / 18.5 MiB. The restore is ~0.6 s above the ~1.6 s floor.
# Env: HF (default /work/bench/llama-500m, the HF folder), WORK (scratch dir, default
# /tmp/tinylm-bench-remote; deleted at the end unless KEEP=1), THREADS (default: all cores),
# TINYLM (a tinylm binary to measure instead of building target/release/tinylm).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
HF=${HF:-/work/bench/llama-500m}
WORK=${WORK:-/tmp/tinylm-bench-remote}
THREADS=${THREADS:-$(nproc)}
if [ ! -f "$HF/config.json" ]; then
  echo "missing $HF: run \$REFKIT_PY scripts/bench/make_llama_500m.py first (see its header)" >&2
  exit 1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx not found (apt-get install nginx)" >&2; exit 1; }
if [ -z "${TINYLM:-}" ]; then
  cargo build --release --quiet
  TINYLM=$REPO/target/release/tinylm
fi

rm -rf "$WORK"
mkdir -p "$WORK"/{ngx/root,ngx/tmp}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/ngx/nginx.conf" <<EOF
daemon off;
master_process off;
pid $WORK/ngx/nginx.pid;
error_log $WORK/ngx/error.log;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path $WORK/ngx/tmp;
  proxy_temp_path $WORK/ngx/tmp; fastcgi_temp_path $WORK/ngx/tmp;
  uwsgi_temp_path $WORK/ngx/tmp; scgi_temp_path $WORK/ngx/tmp;
  sendfile on;
  server {
    listen 127.0.0.1:$PORT;
    root $WORK/ngx/root;
    client_max_body_size 0;
    location / { dav_methods PUT; create_full_put_path on; }
  }
}
EOF
"$NGINX" -p "$WORK/ngx" -e "$WORK/ngx/error.log" -c "$WORK/ngx/nginx.conf" &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
URL=http://127.0.0.1:$PORT/cache

make_project() {
  mkdir -p "$1"
  cp -r "$REPO/examples" "$1/"
  sed -e '/^\[releases.demo\]/i [models.llama-500m]\nsource.hf = "'"$HF"'"\nquants = ["f16", "q8_0", "q4_k_m"]\ntemplate = "completion"\n' \
    "$REPO/tinylm.toml" >"$1/tinylm.toml"
}

# measure NAME DIR ARGS...: runs tinylm --json in DIR; prints wall s, peak RSS MiB, and the
# JSON report's run / remote bytes.
measure() {
  local name=$1 dir=$2
  shift 2
  sync
  (cd "$dir" && /usr/bin/time -f "%e %M" -o "$WORK/time" "$TINYLM" --json "$@" >"$WORK/$name.json" 2>"$WORK/$name.err") || {
    cat "$WORK/$name.err" >&2
    exit 1
  }
  read -r wall rss <"$WORK/time"
  python3 - "$name" "$wall" "$rss" "$WORK/$name.json" <<'PY'
import json, sys
name, wall, rss, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(path))
rem = r.get("remote") or {}
run = r.get("run", r.get("pushed", "-"))
down = rem.get("downloaded_bytes", 0) / 2**20
up = rem.get("uploaded_bytes", 0) / 2**20
print(f"{name:<22} {wall:8.2f} s {rss / 1024:9.1f} MiB   run {run!s:>3}   down {down:8.1f} MiB   up {up:8.1f} MiB")
PY
  echo "$wall" >"$WORK/$name.wall"
}

make_project "$WORK/a"
make_project "$WORK/b"
make_project "$WORK/c"
echo "tinylm $(git -C "$REPO" rev-parse --short HEAD), $THREADS threads, remote $URL"
printf "%-22s %10s %13s\n" step wall "peak RSS"
measure cold "$WORK/a" --cache "$WORK/cache-a" build -j "$THREADS"
measure push "$WORK/a" --cache "$WORK/cache-a" cache push --remote-cache "$URL"
cp "$WORK/a/tinylm.lock" "$WORK/b/" && cp "$WORK/a/tinylm.lock" "$WORK/c/"
measure restore "$WORK/b" --cache "$WORK/cache-b" build --locked -j "$THREADS" --remote-cache "$URL"
measure "restore (demo only)" "$WORK/c" --cache "$WORK/cache-c" build -j "$THREADS" --remote-cache "$URL" tiny-gpt2 tiny-llama3
cmp -s <(cd "$WORK/a/dist" && find . -type f -exec sha256sum {} + | sort -k2) \
  <(cd "$WORK/b/dist" && find . -type f -exec sha256sum {} + | sort -k2) &&
  echo "dist/ of the restore is byte-identical to the cold build" ||
  { echo "dist/ DIFFERS" >&2; exit 1; }
echo "largest output: $(find "$WORK/cache-a/cas" -type f -printf '%s\n' | sort -n | tail -1 | awk '{printf "%.1f MiB", $1/2^20}')"
echo "restore speed-up: $(echo "$(cat "$WORK/cold.wall") / $(cat "$WORK/restore.wall")" | bc -l | xargs printf '%.1f')x"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the cores)"
