#!/usr/bin/env bash
# cfm serve against cfm bench, per tier, on the same frame (a synthetic cookie, 400×400):
#  1. sustained throughput: 24 frames sent at once into a 64-deep blocking queue; the last
#     result's latency is the time the daemon needed for all 24 → frames/s, compared with
#     `cfm bench --rgb --xyz` on that frame;
#  2. latency below capacity: 12 frames at 80 % of the bench rate with the default queue.
# Seeded random weights; mappers trained for one epoch (speed does not depend on them).
# Usage: scripts/bench-serve.sh [WORKDIR] [TIERS…]   (after swift build -c release)
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(swift build -c release --show-bin-path)/cfm
W=${1:-/tmp/cfm-bench-serve}; shift || true
TIERS=${*:-tiny small medium full}
mkdir -p "$W"
[ -f "$W/ext/vit.safetensors" ] || "$B" init-weights --seed 0 --out "$W/ext" >/dev/null
[ -d "$W/data/cookie" ] || "$B" synth --out "$W/data" --seed 3 --classes cookie --train 4 --validation 2 --test-per-type 1 >/dev/null
one="$W/one/cookie/test/good"
mkdir -p "$one/rgb" "$one/xyz"
cp "$W/data/cookie/test/good/rgb/000.png" "$one/rgb/"; cp "$W/data/cookie/test/good/xyz/000.tiff" "$one/xyz/"

serve() {  # serve TIER PORT CONFIG-EXTRA → starts the daemon, echoes its pid
    cat > "$W/$1.yaml" <<Y
model: {tier: $1, extractors: $W/ext, bundle: $W/m-$1}
input: {endpoint: "tcp://127.0.0.1:$2", pattern: pull, mode: connect, topic: frame}
output: {endpoint: "tcp://127.0.0.1:$(($2 + 1))", topic_prefix: result, publish_maps: false}
decision: {threshold: 1.0}
logging: {journald: "off", level: error}
$3
Y
    "$B" serve --config "$W/$1.yaml" >"$W/serve-$1.log" 2>&1 & echo $!
}
stop() {  # stop PID: SIGTERM (drain, exit 0), wait until gone
    kill -TERM "$1"
    while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
}
replay() {  # replay PORT FRAMES RATE OUT
    "$B" replay --data "$W/one/cookie/test" --pattern push --endpoint "tcp://127.0.0.1:$1" --results "tcp://127.0.0.1:$(($1 + 1))" \
        --rate "$3" --frames "$2" --timeout 600 --json > "$4"
}

port=27000
for t in $TIERS; do
    [ -d "$W/m-$t" ] || "$B" train --data "$W/data/cookie" --extractors "$W/ext" --tier "$t" --out "$W/m-$t" \
        --epochs 1 --pixels-per-sample 256 --cache "$W/cache" >/dev/null 2>&1
    "$B" bench --tier "$t" --frames 5 --extractors "$W/ext" --model "$W/m-$t" \
        --rgb "$one/rgb/000.png" --xyz "$one/xyz/000.tiff" > "$W/bench-$t.json"
    pid=$(serve "$t" $port "pipeline: {queue_depth: 64, overflow: block}"); sleep 4
    replay $port 24 0 "$W/sat-$t.json"; stop "$pid"
    rate=$(python3 -c "import json; print(round(0.8 * json.load(open('$W/bench-$t.json'))['fps'], 3))")
    pid=$(serve "$t" $((port + 2)) ""); sleep 4
    replay $((port + 2)) 12 "$rate" "$W/lat-$t.json"; stop "$pid"
    python3 - "$t" "$W" <<'PY'
import json, sys
t, w = sys.argv[1], sys.argv[2]
b = json.load(open(f"{w}/bench-{t}.json")); s = json.load(open(f"{w}/sat-{t}.json")); l = json.load(open(f"{w}/lat-{t}.json"))
fps = s["results"] / (s["daemon_p99_ms"] / 1000)
print(f"{t:7s} bench {b['fps']:.3f} fps  serve {fps:.3f} fps (ratio {fps / b['fps']:.3f}, {s['results']}/{s['sent']} results, "
      f"{s['missing']} missing, {s['out_of_order']} out of order)  latency at 80% load p50 {l['p50_ms']:.0f} ms p99 {l['p99_ms']:.0f} ms")
PY
    port=$((port + 10))
done
