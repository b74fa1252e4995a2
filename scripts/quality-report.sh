#!/usr/bin/env bash
# Detection quality on synthetic parts → docs/quality.md: the crossmodal method at every tier
# (seeded random extractor weights) next to the non-learned baseline, per class and defect type,
# plus a few-shot run. Resumable: runs whose metrics.json exists are kept; a work directory made
# with other settings is refused. Settings come from the environment (defaults below).
#
#   bash scripts/quality-report.sh                    # everything (~70 min on 2 cores)
#   TIERS=small CLASSES=cookie bash scripts/quality-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${WORK:-/tmp/cfm-quality}
TIERS=${TIERS:-tiny small medium full}
CLASSES=${CLASSES:-cookie box gland}
SEED=${SEED:-1}                 # cfm synth seed
TRAIN=${TRAIN:-20}              # nominal training samples per class
TEST_PER_TYPE=${TEST_PER_TYPE:-6}
SHOTS=${SHOTS:-20}
EPOCHS=${EPOCHS:-100}
PIXELS=${PIXELS:-512}           # unmasked pixels per sample and step
FEWSHOT=${FEWSHOT:-5}           # 0 = no few-shot run
OUT=${OUT:-docs/quality.md}

swift build -c release >/dev/null
CFM="$(swift build -c release --show-bin-path)/cfm"

mkdir -p "$WORK/results" "$WORK/models" "$WORK/logs"
settings=$(printf '{"seed": %s, "train": %s, "test_per_type": %s, "shots": %s, "epochs": %s, "pixels": %s, "fewshot": %s, "tiers": [%s], "classes": [%s]}' \
    "$SEED" "$TRAIN" "$TEST_PER_TYPE" "$SHOTS" "$EPOCHS" "$PIXELS" "$FEWSHOT" \
    "$(printf '"%s",' $TIERS | sed 's/,$//')" "$(printf '"%s",' $CLASSES | sed 's/,$//')")
if [ -f "$WORK/settings.json" ] && [ "$(cat "$WORK/settings.json")" != "$settings" ]; then
    echo "$WORK holds runs made with other settings ($(cat "$WORK/settings.json")); remove it or set WORK" >&2
    exit 1
fi
echo "$settings" > "$WORK/settings.json"

[ -f "$WORK/data/synth.json" ] || "$CFM" synth --out "$WORK/data" --seed "$SEED" --train "$TRAIN" --test-per-type "$TEST_PER_TYPE" --classes $CLASSES
[ -f "$WORK/extractors/pointmae.safetensors" ] || "$CFM" init-weights --seed 0 --out "$WORK/extractors"

# train_and_eval RUN TIER CLASS SHOTS: a model bundle and its metrics (skipped when done).
train_and_eval() {
    local run=$1 tier=$2 class=$3 shots=$4
    [ -f "$WORK/results/$run/metrics.json" ] && return
    echo "== $run"
    rm -rf "$WORK/models/$run"
    "$CFM" train --data "$WORK/data/$class" --extractors "$WORK/extractors" --tier "$tier" --out "$WORK/models/$run" \
        --shots "$shots" --epochs "$EPOCHS" --pixels-per-sample "$PIXELS" --cache "$WORK/cache" 2> "$WORK/logs/$run.train.log"
    "$CFM" eval --data "$WORK/data/$class" --extractors "$WORK/extractors" --model "$WORK/models/$run" \
        --out "$WORK/results/$run" 2> "$WORK/logs/$run.eval.log"
}

for class in $CLASSES; do
    [ -f "$WORK/results/baseline-$class/metrics.json" ] && continue
    "$CFM" eval --data "$WORK/data/$class" --baseline --shots "$SHOTS" --out "$WORK/results/baseline-$class" 2> "$WORK/logs/baseline-$class.log"
done
for tier in $TIERS; do
    for class in $CLASSES; do train_and_eval "$tier-$class" "$tier" "$class" "$SHOTS"; done
done
if [ "$FEWSHOT" -gt 0 ]; then
    for class in $CLASSES; do
        train_and_eval "fewshot$FEWSHOT-$class" small "$class" "$FEWSHOT"
        [ -f "$WORK/results/baseline-fewshot$FEWSHOT-$class/metrics.json" ] ||
            "$CFM" eval --data "$WORK/data/$class" --baseline --shots "$FEWSHOT" --out "$WORK/results/baseline-fewshot$FEWSHOT-$class" \
                2> "$WORK/logs/baseline-fewshot$FEWSHOT-$class.log"
    done
fi

python3 tools/quality_report.py "$WORK" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo "wrote $OUT"
