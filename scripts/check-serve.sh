#!/usr/bin/env bash
# `cfm serve` stopped by SIGTERM as systemd stops it, on a real tiny model (release build):
#   1. the drain timeout expires with a frame still in inference;
#   2. overflow: block, a burst of frames, SIGTERM while the receive thread waits for room.
# Each must exit 0 and answer every frame it received ("received N, published N" in the
# stop line). RUNS (default 3) runs of each. CFM_SERVE_WORK=DIR reuses DIR/ext and
# DIR/model (else synthetic data, seeded weights and a tiny model are made, ~2 min).
# Usage: bash scripts/check-serve.sh    (CFM=path/to/cfm to test another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tiny-model.sh
CFM=${CFM:-"$(swift build -c release --show-bin-path)/cfm"}
RUNS=${RUNS:-3}
WORK=${CFM_SERVE_WORK:-$(mktemp -d /tmp/cfm-check-serve.XXXXXX)}
[ -n "${CFM_SERVE_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
failures=0

make_tiny_model "$CFM" "$WORK"

# run NAME PIPELINE FRAMES SLEEP: serve, stream FRAMES frames, SIGTERM after SLEEP s.
run() {
    local name=$1 pipeline=$2 frames=$3 pause=$4 port=$((5700 + RANDOM % 200))
    cat > serve.yaml <<EOF
model: {tier: tiny, extractors: $WORK/ext, bundle: $WORK/model}
input: {endpoint: "tcp://127.0.0.1:$port", pattern: pull, mode: bind}
output: {endpoint: "tcp://127.0.0.1:$((port + 1))"}
pipeline: $pipeline
logging: {journald: off}
EOF
    "$CFM" serve --config serve.yaml 2> serve.err & local pid=$!
    for _ in $(seq 300); do grep -q "cfm serving" serve.err && break; sleep 0.1; done
    "$CFM" replay --data data/cookie/test --endpoint "tcp://127.0.0.1:$port" --results "tcp://127.0.0.1:$((port + 1))" \
        --pattern push --mode connect --rate 0 --frames "$frames" --warmup 0.2 --timeout 5 > /dev/null 2>&1 & local replay=$!
    sleep "$pause"
    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    wait "$replay" || true
    local counts
    counts=$(grep -o "received [0-9]*, published [0-9]*" serve.err || echo "no stop line")
    local received published
    received=$(echo "$counts" | sed -n 's/received \([0-9]*\), published \([0-9]*\)/\1/p')
    published=$(echo "$counts" | sed -n 's/received \([0-9]*\), published \([0-9]*\)/\2/p')
    if [ "${received:-0}" -eq 0 ]; then
        echo "FAIL $name: no frame arrived within $pause s (a loaded machine: raise the pause)"; failures=$((failures + 1))
    elif [ "$status" -ne 0 ] || [ "$received" != "$published" ]; then
        echo "FAIL $name: exit $status, $counts"; failures=$((failures + 1))
        grep -v "^ \|^$" serve.err | head -5 | sed 's/^/    /'
    else
        echo "ok   $name: exit 0, $counts"
    fi
}

for i in $(seq "$RUNS"); do
    run "drain timeout with a frame in inference ($i)" "{drain_timeout_s: 0.2}" 1 2
    run "overflow block + SIGTERM mid-burst ($i)" "{overflow: block, queue_depth: 2, drain_timeout_s: 1}" 10 1.5
done

if [ "$failures" -gt 0 ]; then echo "$failures serve check(s) failed"; exit 1; fi
echo "all serve checks passed"
