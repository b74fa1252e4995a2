#!/usr/bin/env bash
# What bf16 costs against fp32, on this machine, in one run:
#  1. speed: `cfm bench` at tiny and full, fp32 and bf16 alternating (ROUNDS rounds), medians;
#  2. accuracy on every `cfm synth` class: a tiny bundle trained and calibrated at fp32, its test
#     split evaluated at fp32 and at bf16 (same bundle, same threshold), compared by
#     tools/reference/compare_precision.py: verdict agreement at the calibrated threshold, worst
#     relative error of the score and of the anomaly map, and of the features (`cfm infer --dump`
#     on the first good and the first combined-defect sample).
# Seeded random extractor weights (the architecture and the arithmetic are what matter here).
# Needs AVX512-BF16. Usage: scripts/bf16-cost.sh [WORKDIR] [ROUNDS] [TEST_PER_TYPE]
# (after swift build -c release; ROUNDS 0 skips the speed part, TEST_PER_TYPE 0 the accuracy part).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${CFM:-$(swift build -c release --show-bin-path)/cfm}
W=${1:-/tmp/cfm-bf16-cost}; ROUNDS=${2:-2}; TEST_PER_TYPE=${3:-10}
mkdir -p "$W"
[ -f "$W/ext/vit.safetensors" ] || "$B" init-weights --seed 0 --out "$W/ext" >/dev/null

[ "$ROUNDS" -gt 0 ] && echo "== speed (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
for round in $(seq "$ROUNDS"); do
    for tier in tiny full; do
        for precision in fp32 bf16; do
            frames=$([ $tier = tiny ] && echo 3 || echo 2)
            "$B" bench --tier $tier --frames $frames --extractors "$W/ext" --precision $precision \
                > "$W/bench-$tier-$precision-$round.json"
        done
    done
done
[ "$ROUNDS" -gt 0 ] && python3 - "$W" "$ROUNDS" <<'PY'
import json, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
for tier in ("tiny", "full"):
    runs = {p: [json.load(open(f"{w}/bench-{tier}-{p}-{r}.json")) for r in range(1, rounds + 1)] for p in ("fp32", "bf16")}
    frame = {p: statistics.median(r["median_ms"] for r in runs[p]) for p in runs}
    stages = {p: {s: statistics.median(r["stages_ms"][s] for r in runs[p]) for s in ("extract2d", "extract3d", "map")} for p in runs}
    print(f"{tier}: frame fp32 {frame['fp32']:.0f} ms, bf16 {frame['bf16']:.0f} ms, bf16/fp32 {frame['bf16'] / frame['fp32']:.2f}; "
          + ", ".join(f"{s} {stages['fp32'][s]:.0f} → {stages['bf16'][s]:.0f} ms" for s in stages["fp32"]))
PY
[ "$ROUNDS" -gt 0 ] && echo "(load average after: $(cut -d' ' -f1-3 /proc/loadavg))"

[ "$TEST_PER_TYPE" -gt 0 ] || exit 0
echo "== accuracy"
[ -d "$W/data/gland" ] || "$B" synth --out "$W/data" --seed 5 --train 8 --validation 8 --test-per-type "$TEST_PER_TYPE" >/dev/null
for class in cookie box gland; do
    M="$W/$class"
    mkdir -p "$M"
    if [ ! -f "$M/model/manifest.yaml" ] || ! grep -q threshold "$M/model/manifest.yaml"; then
        "$B" train --data "$W/data/$class" --extractors "$W/ext" --tier tiny --epochs 3 --out "$M/model" >/dev/null 2>&1
        "$B" calibrate --data "$W/data/$class" --model "$M/model" --extractors "$W/ext" --false-reject-rate 0.125 \
            --precision fp32 >/dev/null 2>&1
    fi
    for precision in fp32 bf16; do
        "$B" eval --data "$W/data/$class" --model "$M/model" --extractors "$W/ext" --precision $precision \
            --out "$M/eval-$precision" >/dev/null 2>&1
    done
    dumps=()
    for type in good combined; do
        folder="$W/data/$class/test/$type"
        for precision in fp32 bf16; do
            "$B" infer --rgb "$folder/rgb/000.png" --xyz "$folder/xyz/000.tiff" --extractors "$W/ext" --model "$M/model" \
                --precision $precision --dump --out "$M/dump-$type-$precision" >/dev/null 2>&1
        done
        dumps+=("$M/dump-$type-fp32:$M/dump-$type-bf16")
    done
    threshold=$(sed -n 's/^ *threshold: *//p' "$M/model/manifest.yaml")
    echo "$class:"
    python3 tools/reference/compare_precision.py --fp32 "$M/eval-fp32" --bf16 "$M/eval-bf16" --threshold "$threshold" \
        --dumps "${dumps[@]}" | tee "$M/compare.json"
done
