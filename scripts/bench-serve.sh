#!/usr/bin/env bash
# `cfm serve` throughput and latency at two sensor sizes, 800×800 (0.64 MP, MVTec 3D-AD) and
# 2448×2048 (5 MP, a common line sensor), tiny tier, seeded random weights (speed does not
# depend on them), for one or more cfm binaries in the same run (A/B: pass both).
#  1. throughput: FRAMES frames sent at once into a blocking queue deep enough for all; frames/s
#     = (FRAMES − 1) / (last − first published_ns), the steady rate once the pipeline is full;
#  2. latency below capacity: FRAMES frames at 80 % of that rate with the default queue (depth 2,
#     drop_oldest); median receive → publish latency_ms of the scored ones.
# The synthetic frame (tools/client_example.py encodes it): a pinhole camera 0.5 m above a
# slightly tilted table with an elliptic dome covering ~40 % of the view, millimetre noise, a
# smooth texture. Prints one row per binary and size (with the daemon's resident memory once
# ready and how far the default-queue run's frames raised its peak above that, from /proc:
# received messages included), then the 5 MP / 0.64 MP throughput ratio.
# The machine's load average is printed before and after: compare only runs on an idle machine.
# Usage: scripts/bench-serve.sh [CFM_BINARY…]   (default: the release build; swift build -c release)
#   FRAMES (default 8), WORK (default /tmp/cfm-bench-serve: extractors and model are reused),
#   SIZES (default "800x800 2448x2048"; the throughput ratio needs both)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib/tiny-model.sh
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$(swift build -c release --show-bin-path)/cfm")
FRAMES=${FRAMES:-8}
WORK=${WORK:-/tmp/cfm-bench-serve}
SIZES=${SIZES:-800x800 2448x2048}
PY=/usr/bin/python3 # Debian's: numpy and pyzmq
mkdir -p "$WORK"
make_tiny_model "${BINARIES[0]}" "$WORK"

# drive IN OUT WIDTH HEIGHT FRAMES RATE → JSON {fps, p50_ms, results, dropped}
drive() {
    "$PY" - "$@" <<'PY'
import json, sys, time
import numpy as np
import zmq
sys.path.insert(0, "tools")
from client_example import encode

endpoint, results_endpoint, width, height, frames, rate = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]), float(sys.argv[6])
rng = np.random.default_rng(7)
cx, cy, a, b, focal = width / 2, height / 2, 0.40 * width, 0.32 * height, 1.3 * max(width, height)
v, u = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
r2 = ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2
ray_x, ray_y = (u - cx) / focal, (v - cy) / focal
table = 0.5 / (1 - 0.05 * ray_x - 0.02 * ray_y)
z = np.where(r2 < 1, table - 0.04 * np.sqrt(np.maximum(0, 1 - r2)), table) + 0.0002 * rng.standard_normal((height, width))
xyz = np.stack([ray_x * z, ray_y * z, z], axis=-1).astype(np.float32)
phases = rng.uniform(0, 6.28, 6)
x, y = u / width, v / height
rgb = np.stack([128 + np.where(r2 < 1, 90, 30) * np.sin(9 * x + phases[2 * c]) * np.cos(7 * y + phases[2 * c + 1])
                for c in range(3)], axis=-1)
rgb = np.clip(rgb + 6 * rng.standard_normal(rgb.shape), 0, 255).astype(np.uint8)

ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"result.")
sub.connect(results_endpoint)
push = ctx.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 5000)
push.connect(endpoint)
time.sleep(1.0)
run = format(time.time_ns() % 36 ** 6, "x")
start = time.monotonic()
for i in range(frames):
    if rate > 0:
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
    push.send_multipart(encode("frame", f"{run}-{i}", rgb, xyz))
got = []
deadline = time.monotonic() + 900
while len(got) < frames and time.monotonic() < deadline:
    if sub.poll(1000):
        topic, body = sub.recv_multipart()[:2]
        if not topic.endswith(b".heartbeat"):
            got.append(json.loads(body))
scored = [r for r in got if r["verdict"] in ("pass", "reject")]
published = sorted(r["published_ns"] for r in got)
span = (published[-1] - published[0]) / 1e9 if len(published) > 1 else 0
print(json.dumps({"fps": (len(published) - 1) / span if span > 0 else 0,
                  "p50_ms": float(np.median([r["latency_ms"] for r in scored])) if scored else 0,
                  "results": len(got), "dropped": sum(r["verdict"] == "dropped" for r in got),
                  "errors": sum(r["verdict"] == "error" for r in got)}))
PY
}

# measure BINARY WIDTH HEIGHT PORT → "fps p50_ms results dropped ready_rss_mb frames_peak_growth_mb"
measure() {
    local cfm=$1 width=$2 height=$3 port=$4 pid sat lat rate
    serve() {  # serve PORT PIPELINE → the daemon's pid
        cat > "$WORK/serve-$1.yaml" <<Y
model: {tier: tiny, extractors: $WORK/ext, bundle: $WORK/model}
input: {endpoint: "tcp://127.0.0.1:$1", pattern: pull, mode: bind, max_width: 4096, max_height: 4096}
output: {endpoint: "tcp://127.0.0.1:$(($1 + 1))", pattern: pub, mode: bind}
decision: {threshold: 1.0}
pipeline: $2
logging: {journald: "off", level: error}
Y
        "$cfm" serve --config "$WORK/serve-$1.yaml" > "$WORK/serve-$1.log" 2>&1 & echo $!
    }
    stop() { kill -TERM "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.2; done; }
    pid=$(serve "$port" "{queue_depth: $((FRAMES + 1)), overflow: block}"); sleep 4
    sat=$(drive "tcp://127.0.0.1:$port" "tcp://127.0.0.1:$((port + 1))" "$width" "$height" "$FRAMES" 0); stop "$pid"
    rate=$("$PY" -c "import json, sys; print(round(0.8 * json.loads(sys.argv[1])['fps'], 4))" "$sat")
    pid=$(serve "$((port + 2))" "{queue_depth: 2, overflow: drop_oldest}"); sleep 4
    # Resident memory once ready, and the peak restarted there (clear_refs 5 resets VmHWM), so
    # the peak below is the frames' and not the start-up's.
    ready=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status"); echo 5 > "/proc/$pid/clear_refs"
    lat=$(drive "tcp://127.0.0.1:$((port + 2))" "tcp://127.0.0.1:$((port + 3))" "$width" "$height" "$FRAMES" "$rate")
    # The daemon's peak resident memory (kB) over the default-queue run: everything it holds,
    # received messages included.
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status"); stop "$pid"
    "$PY" -c "import json, sys; s, l = map(json.loads, sys.argv[1:3]); print(s['fps'], l['p50_ms'], s['results'] + l['results'], l['dropped'], int(sys.argv[3]) / 1024, (int(sys.argv[4]) - int(sys.argv[3])) / 1024)" "$sat" "$lat" "$ready" "$hwm"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, FRAMES=$FRAMES"
printf '%-28s %-10s %10s %14s %8s %13s %15s\n' binary sensor frames/s "p50 ms @80%" dropped "RSS ready MB" "+ frames' peak"
port=27100
for cfm in "${BINARIES[@]}"; do
    declare -A fps=()
    for size in $SIZES; do
        read -r f p n d r g < <(measure "$cfm" "${size%x*}" "${size#*x}" "$port")
        fps[$size]=$f
        printf '%-28s %-10s %10.3f %14.0f %8s %13.0f %15.0f\n' "$(basename "$(dirname "$cfm")")/$(basename "$cfm")" "$size" "$f" "$p" "$d" "$r" "$g"
        [ "$n" -eq $((2 * FRAMES)) ] || echo "  only $n of $((2 * FRAMES)) results arrived" >&2
        port=$((port + 10))
    done
    [ -n "${fps[800x800]:-}" ] && [ -n "${fps[2448x2048]:-}" ] &&
        "$PY" -c "import sys; print(f'  throughput ratio 2448x2048 / 800x800: {float(sys.argv[2]) / float(sys.argv[1]):.3f}')" "${fps[800x800]}" "${fps[2448x2048]}"
    unset fps
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
