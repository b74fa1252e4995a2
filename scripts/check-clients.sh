#!/usr/bin/env bash
# The integrator's side, end to end on loopback with a real tiny model (release build):
#   1. the C reference client (tools/client_example.c) built with -Werror, run against
#      `cfm serve`: every frame answered, heartbeats seen; the daemon records the passes
#      (recording: max_frames caps it) and `cfm train` trains on the recorded folder as it is;
#   2. scale-out: two daemons PULL from one sensor PUSH and PUSH their results to one
#      collector PULL: every frame answered exactly once across the two, each did some.
# Fails loudly on any miss. Run by scripts/test.sh; ~2–3 min on 2 cores (most of it making
# the model). CFM_SERVE_WORK=DIR reuses DIR/ext and DIR/model.
# Usage: bash scripts/check-clients.sh    (CFM=path/to/cfm to test another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tiny-model.sh
CFM=${CFM:-"$(swift build -c release --show-bin-path)/cfm"}
WORK=${CFM_SERVE_WORK:-$(mktemp -d /tmp/cfm-check-clients.XXXXXX)}
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
    [ -n "${CFM_SERVE_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

CLIENT="$WORK/client_example"
cc -std=c99 -Wall -Wextra -Werror tools/client_example.c -lzmq -o "$CLIENT"
echo "ok   tools/client_example.c builds with -std=c99 -Wall -Wextra -Werror"
make_tiny_model "$CFM" "$WORK"
cd "$WORK"
rm -rf recorded

# serve NAME CONFIG-BODY [BUNDLE]: starts `cfm serve` with NAME.yaml (the model section
# added, BUNDLE default model) and waits for its banner; its pid is appended to pids, its log is NAME.err.
serve() {
    local name=$1 bundle=${3:-model}
    { echo "model: {tier: tiny, extractors: $WORK/ext, bundle: $WORK/$bundle}"; echo "logging: {journald: off}"; echo "$2"; } > "$name.yaml"
    "$CFM" serve --config "$name.yaml" 2> "$name.err" &
    local pid=$!
    pids+=($pid)
    for _ in $(seq 600); do
        grep -q "cfm serving" "$name.err" && return 0
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.1
    done
    fail "$name: no 'cfm serving' banner within 60 s"; sed 's/^/    /' "$name.err" | head -5; exit 1
}

# stop_all: SIGTERM every daemon, wait for each; a non-zero exit fails.
stop_all() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid"
        local status=0
        wait "$pid" || status=$?
        [ "$status" -eq 0 ] || fail "a daemon exited $status"
    done
    pids=()
}

# received_published NAME: "R P" from NAME.err's stop line.
received_published() { sed -n 's/.*received \([0-9]*\), published \([0-9]*\).*/\1 \2/p' "$1.err" | tail -1; }

port=$((5800 + RANDOM % 150 * 4))

# 1. The C client against one daemon (PULL bind input, PUB output), recording the passes.
# Every frame is scored (a queue for all of them), and the explicit threshold makes every
# frame of the client's synthetic part a pass.
FRAMES=4
serve single "input: {endpoint: \"tcp://127.0.0.1:$port\", pattern: pull, mode: bind}
output: {endpoint: \"tcp://127.0.0.1:$((port + 1))\", heartbeat_interval_s: 1}
pipeline: {overflow: block, queue_depth: $FRAMES}
decision: {threshold: 1000000}
recording: {directory: $WORK/recorded, class_name: line, which: pass, max_frames: 3}"
status=0
"$CLIENT" --endpoint "tcp://127.0.0.1:$port" --results "tcp://127.0.0.1:$((port + 1))" --frames $FRAMES --timeout 90 \
    > client.out 2> client.err || status=$?
stop_all
if [ "$status" -ne 0 ]; then
    fail "C client: exit $status: $(cat client.err)"; sed 's/^/    /' client.out | tail -5
elif ! grep -q "sent $FRAMES, answered $FRAMES, pass $FRAMES," client.out; then
    fail "C client: $(tail -1 client.out)"
elif ! grep -q "^heartbeat: " client.out; then
    fail "C client: no heartbeat printed"
else
    echo "ok   C client: $(tail -1 client.out)"
fi
# Recording: 3 of 4 passes (max_frames), said in the log; the folder trains as it is.
recorded=$(find recorded/line/train/good/rgb -name '*.png' 2> /dev/null | wc -l)
tiffs=$(find recorded/line/train/good/xyz -name '*.tiff' 2> /dev/null | wc -l)
if [ "$recorded" -ne 3 ] || [ "$tiffs" -ne 3 ]; then
    fail "recording: $recorded PNG and $tiffs TIFF in recorded/line/train/good (expected 3 each, max_frames 3)"
elif ! grep -q "recording stopped: max_frames 3 reached" single.err || ! grep -q "recorded 3" single.err; then
    fail "recording: the cap or the count is not in the log"; grep -i record single.err | sed 's/^/    /'
else
    echo "ok   recording: 3 of $FRAMES passes recorded (max_frames 3), cap and count logged"
fi
if "$CFM" train --data recorded/line --extractors ext --tier tiny --epochs 1 --shots 3 --out model-recorded \
    > train.out 2> train.err && [ -s model-recorded/manifest.yaml ]; then
    echo "ok   cfm train --data recorded/line --shots 3 trains on the recorded folder"
else
    fail "cfm train on the recorded folder: $(grep -v '^\(features\|train\) [0-9]' train.err | tail -2)"
fi

# 2. Scale-out: the client binds the sensor PUSH (frames) and the collector PULL (results);
# two daemons connect to both. Each daemon's bundle path differs (a copy), so the `model`
# field of a result names the daemon that scored it.
cp -r model model-b
FRAMES=8
common="output: {endpoint: \"tcp://127.0.0.1:$((port + 3))\", pattern: push, mode: connect, heartbeat_interval_s: 0}
pipeline: {overflow: block, queue_depth: 1}"
serve line1-a "input: {endpoint: \"tcp://127.0.0.1:$((port + 2))\", pattern: pull, mode: connect}
$common"
serve line1-b "input: {endpoint: \"tcp://127.0.0.1:$((port + 2))\", pattern: pull, mode: connect}
$common" model-b
status=0
"$CLIENT" --bind --collect --endpoint "tcp://127.0.0.1:$((port + 2))" --results "tcp://127.0.0.1:$((port + 3))" \
    --frames $FRAMES --warmup 1 --timeout 120 > scale.out 2> scale.err || status=$?
stop_all
by_a=$(grep -c " model model/" scale.out || true)
by_b=$(grep -c " model model-b/" scale.out || true)
read -r received_a published_a <<< "$(received_published line1-a)"
read -r received_b published_b <<< "$(received_published line1-b)"
if [ "$status" -ne 0 ]; then
    fail "scale-out: client exit $status: $(cat scale.err)"
elif ! grep -q "sent $FRAMES, answered $FRAMES, pass [0-9]*, reject [0-9]*, error 0, dropped 0, duplicates 0" scale.out; then
    fail "scale-out: $(tail -1 scale.out)"
elif [ "$by_a" -eq 0 ] || [ "$by_b" -eq 0 ] || [ $((by_a + by_b)) -ne $FRAMES ]; then
    fail "scale-out: daemon a scored $by_a, daemon b $by_b of $FRAMES (each must do some)"
elif [ "$received_a" != "$by_a" ] || [ "$received_b" != "$by_b" ] || [ "$published_a" != "$by_a" ] || [ "$published_b" != "$by_b" ]; then
    fail "scale-out: stop lines say a received $received_a published $published_a, b received $received_b published $published_b"
else
    echo "ok   scale-out: $FRAMES frames answered exactly once across two daemons (a $by_a, b $by_b)"
fi

if [ "$failures" -gt 0 ]; then echo "$failures client check(s) failed"; exit 1; fi
echo "all client checks passed"
