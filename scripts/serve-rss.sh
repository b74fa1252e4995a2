#!/usr/bin/env bash
# Resident memory of `cfm serve` once it is ready, per tier and pipeline.in_flight: starts the
# daemon on loopback with a bundle of that tier, waits for its "cfm serving" line, reads
# VmRSS and VmHWM from /proc, stops it (SIGTERM). The weights are loaded once per process, so
# a second worker should add only its workspaces, not a second copy of the weights.
#   scripts/serve-rss.sh [WORK] [TIERS...]     (CFM=path/to/cfm; default: the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${CFM:-"$(swift build -c release --show-bin-path)/cfm"}
W=${1:-/tmp/cfm-serve-rss}; shift || true
TIERS=${*:-small full}
mkdir -p "$W"
[ -f "$W/ext/pointmae.safetensors" ] || "$B" init-weights --seed 0 --out "$W/ext" > /dev/null
[ -d "$W/data/cookie" ] || "$B" synth --out "$W/data" --classes cookie --size 160 --train 1 --validation 1 --test-per-type 1 > /dev/null
port=27000
echo "tier in_flight VmRSS_MB VmHWM_MB"
for t in $TIERS; do
    [ -d "$W/m-$t" ] || "$B" train --data "$W/data/cookie" --extractors "$W/ext" --tier "$t" --shots 1 --epochs 1 \
        --out "$W/m-$t" --cache "$W/cache" > /dev/null 2>&1
    for n in 1 2; do
        port=$((port + 2))
        cat > "$W/cfm-$t-$n.yaml" <<YAML
model: {tier: $t, extractors: $W/ext, bundle: $W/m-$t}
input: {endpoint: "tcp://127.0.0.1:$port", pattern: pull, mode: connect}
output: {endpoint: "tcp://127.0.0.1:$((port + 1))"}
pipeline: {in_flight: $n}
decision: {threshold: 1}
logging: {journald: "off", level: info}
YAML
        "$B" serve --config "$W/cfm-$t-$n.yaml" 2> "$W/serve-$t-$n.log" &
        pid=$!
        for _ in $(seq 600); do grep -q "cfm serving" "$W/serve-$t-$n.log" && break; sleep 0.5; done
        grep -q "cfm serving" "$W/serve-$t-$n.log" || { echo "serve $t $n did not start:"; cat "$W/serve-$t-$n.log"; kill "$pid"; exit 1; }
        sleep 1
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
        kill -TERM "$pid"; wait "$pid" || true
        printf "%s %s %d %d\n" "$t" "$n" $((rss / 1024)) $((hwm / 1024))
    done
done
