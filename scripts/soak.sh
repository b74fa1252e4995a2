#!/usr/bin/env bash
# Soak test of `cfm serve` (not in CI; the full run takes MINUTES + ~5 min of setup):
#  - tier tiny, seeded random extractors (cfm init-weights), mappers trained for one epoch on a
#    synthetic cookie class and calibrated (cfm train, cfm calibrate), maps published (large
#    results, so a subscriber that does not read costs what it can);
#  - `cfm replay` feeds it over PUB/SUB at 4× the capacity `cfm bench` measures on the same
#    frame, one frame in ten malformed (cycling through every malformed kind), and reads the
#    results it gets;
#  - a second subscriber connects, subscribes and never reads; a third one reads and counts
#    every result (Python, pyzmq);
#  - the daemon's RSS is sampled every 10 s.
# At the end (SIGTERM, drain) it checks: the daemon exited 0; it published one result per
# frame it received (its own summary); the reading subscriber got every published result the
# daemon did not count undelivered (PUB sends to all subscribers or none: while the idle one's
# queue is full, results are undelivered); replay's malformed frames got the right codes (or,
# for the kind only inference refuses, were shed as dropped). Prints the counts and the RSS
# curve (first and last 5 minutes); the full samples are in WORKDIR/rss.csv. Exit status 1 if
# a check fails.
# Usage: scripts/soak.sh [MINUTES]   (default 30; env SOAK_WORK=/tmp/cfm-soak, SOAK_PORT=27600,
#        CFM=path/to/cfm instead of building release)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
MINUTES=${1:-30}
W=${SOAK_WORK:-/tmp/cfm-soak}
PORT=${SOAK_PORT:-27600}
IN="tcp://127.0.0.1:$PORT" OUT="tcp://127.0.0.1:$((PORT + 1))"
if [ -z "${CFM:-}" ]; then swift build -c release --product cfm >&2; fi
B=${CFM:-"$(swift build -c release --show-bin-path)/cfm"}
mkdir -p "$W"

# Weights, data and a trained, calibrated tiny bundle (kept between runs).
[ -f "$W/ext/vit.safetensors" ] || "$B" init-weights --seed 0 --out "$W/ext" >/dev/null
[ -d "$W/data/cookie" ] || "$B" synth --out "$W/data" --seed 3 --classes cookie --train 4 --validation 4 \
    --test-per-type 1 >/dev/null
if ! grep -q "threshold:" "$W/model/manifest.yaml" 2>/dev/null; then
    "$B" train --data "$W/data/cookie" --extractors "$W/ext" --tier tiny --out "$W/model" --epochs 1 \
        --pixels-per-sample 256 --cache "$W/cache" >/dev/null 2>"$W/setup.log" || { tail -n 3 "$W/setup.log"; exit 1; }
    "$B" calibrate --data "$W/data/cookie" --model "$W/model" --extractors "$W/ext" --false-reject-rate 0.25 \
        >/dev/null 2>"$W/setup.log" || { tail -n 3 "$W/setup.log"; exit 1; }
fi
# Capacity on one test frame; the feed rate is 4× that.
one="$W/one/cookie/test/good"
mkdir -p "$one/rgb" "$one/xyz"
cp "$W/data/cookie/test/good/rgb/000.png" "$one/rgb/"; cp "$W/data/cookie/test/good/xyz/000.tiff" "$one/xyz/"
"$B" bench --tier tiny --frames 3 --extractors "$W/ext" --model "$W/model" \
    --rgb "$one/rgb/000.png" --xyz "$one/xyz/000.tiff" > "$W/bench.json"
capacity=$(python3 -c "import json; print(json.load(open('$W/bench.json'))['fps'])")
rate=$(python3 -c "print(round(4 * $capacity, 2))")
frames=$(python3 -c "print(int($rate * 60 * $MINUTES))")

cat > "$W/soak.yaml" <<Y
model: {tier: tiny, extractors: $W/ext, bundle: $W/model}
input: {endpoint: "$IN", pattern: sub, mode: connect, topic: frame}
output: {endpoint: "$OUT", mode: bind, topic_prefix: result, publish_maps: true}
pipeline: {queue_depth: 2, overflow: drop_oldest, drain_timeout_s: 120}
logging: {journald: "off", level: info, summary_interval_s: 60}
Y
"$B" serve --config "$W/soak.yaml" > "$W/serve.log" 2>&1 &
daemon=$!
rm -f "$W/stop"
# The subscribers and the RSS sampler, until $W/stop appears.
/usr/bin/python3 - "$daemon" "$OUT" "$W" <<'PY' &
import json, os, sys, time, zmq
pid, endpoint, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = zmq.Context()
idle = context.socket(zmq.SUB)            # subscribes and never reads
idle.setsockopt(zmq.RCVHWM, 1)
idle.setsockopt(zmq.SUBSCRIBE, b"result")
idle.connect(endpoint)
reader = context.socket(zmq.SUB)          # reads and counts every result
reader.setsockopt(zmq.RCVHWM, 100000)
reader.setsockopt(zmq.SUBSCRIBE, b"result")
reader.connect(endpoint)
counts, start, next_sample = {}, time.monotonic(), 0.0
with open(f"{work}/rss.csv", "w") as rss:
    rss.write("seconds,rss_mb\n")
    while not os.path.exists(f"{work}/stop"):
        now = time.monotonic() - start
        if now >= next_sample:
            try:
                kb = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
                rss.write(f"{round(now)},{kb / 1024:.1f}\n"); rss.flush()
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                pass
            next_sample += 10
        if reader.poll(200):
            while True:
                try:
                    parts = reader.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                verdict = parts[0].decode(errors="replace").rsplit(".", 1)[-1]
                if verdict != "heartbeat":
                    counts[verdict] = counts.get(verdict, 0) + 1
json.dump(counts, open(f"{work}/reader.json", "w"))
idle.close(linger=0); reader.close(linger=0); context.term()
PY
monitor=$!
sleep 5
status=0
"$B" replay --data "$one/../.." --pattern pub --mode bind --endpoint "$IN" --results "$OUT" --rate "$rate" \
    --frames "$frames" --malformed-every 10 --timeout 60 --json > "$W/replay.json" 2> "$W/replay.err" || status=$?
sleep 2
kill -TERM "$daemon"
daemon_status=0
wait "$daemon" || daemon_status=$?
sleep 1
touch "$W/stop"
wait "$monitor"

python3 - "$W" "$MINUTES" "$capacity" "$rate" "$daemon_status" <<'PY'
import json, re, sys
work, minutes, capacity, rate, daemon_status = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
replay = json.load(open(f"{work}/replay.json"))
reader = json.load(open(f"{work}/reader.json"))
log = open(f"{work}/serve.log").read()
stopped = [l for l in log.splitlines() if "cfm stopped" in l]
summary = stopped[-1] if stopped else ""
def count(name):
    m = re.search(rf"\b{name} (\d+)", summary)
    return int(m.group(1)) if m else None
received, published, undelivered = count("received"), count("published"), count("undelivered") or 0
rss = [tuple(map(float, l.split(","))) for l in open(f"{work}/rss.csv").read().split()[1:]]
read = sum(reader.values())
print(f"soak: {minutes:g} min at tier tiny, capacity {capacity:.2f} frames/s, fed at {rate:.2f} frames/s (one in ten malformed)")
print(f"replay: sent {replay.get('sent')}, results {replay.get('results')}, verdicts {replay.get('verdicts')}, "
      f"errors {replay.get('error_codes')}, missing {replay.get('missing')} (shed by the PUB/SUB high-water marks, or answered after replay's timeout)")
print(f"daemon: {summary.split('cfm stopped: ', 1)[-1] if summary else 'no stop summary in serve.log'}; exit {daemon_status}")
print(f"reading subscriber: {read} results {reader}")
def curve(samples):
    return "  ".join(f"{int(t)}s:{mb:.0f}" for t, mb in samples)
print(f"RSS MB, first 5 min: {curve([s for s in rss if s[0] <= 300])}")
print(f"RSS MB, last 5 min:  {curve([s for s in rss if s[0] >= rss[-1][0] - 300] if rss else [])}")
if rss:
    print(f"RSS MB: min {min(m for _, m in rss):.0f}, max {max(m for _, m in rss):.0f}, last {rss[-1][1]:.0f} ({len(rss)} samples)")
failures = []
if daemon_status != 0: failures.append(f"the daemon exited {daemon_status}")
if received is None or published is None: failures.append("no received/published counts in the daemon's stop summary")
elif published != received: failures.append(f"the daemon received {received} frames but published {published} results")
elif read != published - undelivered:
    failures.append(f"the reading subscriber got {read} results; {published} published, {undelivered} counted undelivered")
# A malformed frame only inference can refuse (too_few_points) may be shed first: dropped is right then.
wrong = [m for m in replay.get("malformed_mismatches", []) if "got dropped" not in m]
if wrong: failures.append(f"malformed frames answered wrongly: {wrong[:5]}")
print("FAIL: " + "; ".join(failures) if failures else
      "ok: every received frame got exactly one result; the reader got every one not counted undelivered")
sys.exit(1 if failures else 0)
PY
