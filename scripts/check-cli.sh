#!/usr/bin/env bash
# End-to-end checks of the offline command line on a small synthetic class with full-size
# seeded random extractors (release build): train → calibrate → eval (incl. --shots and the
# baseline), infer and bench work, and bad input is refused with a one-line reason, exit
# status 1 and no files left behind. Run by scripts/test.sh; takes ~1 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CFM=${CFM:-"$(swift build -c release --show-bin-path)/cfm"}
WORK=$(mktemp -d /tmp/cfm-check-cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
failures=0

# refused NAME PATTERN COMMAND...: exit status 1, stderr one line matching PATTERN.
refused() {
    local name=$1 pattern=$2 status=0
    shift 2
    "$@" > stdout 2> stderr || status=$?
    local lines
    lines=$(grep -vc '^\(features\|train\|calibrate\|eval\|baseline\) [0-9]' stderr || true)  # progress lines aside
    if [ "$status" -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" stderr; then
        echo "FAIL $name: status $status, stderr:"; sed 's/^/    /' stderr; failures=$((failures + 1))
    else
        echo "ok   $name: $(grep -v '^\(features\|train\|calibrate\|eval\|baseline\) [0-9]' stderr)"
    fi
}

# absent NAME PATH...: none of the paths exists.
absent() {
    local name=$1
    shift
    for path in "$@"; do
        if [ -e "$path" ]; then echo "FAIL $name: $path was left behind"; failures=$((failures + 1)); fi
    done
}

"$CFM" synth --out data --classes cookie --size 160 --train 6 --validation 4 --test-per-type 1 --seed 3 > /dev/null
"$CFM" init-weights --seed 0 --out ext > /dev/null
"$CFM" init-weights --seed 1 --out other-ext > /dev/null
train() { "$CFM" train --data data/cookie --extractors ext --tier tiny --epochs 2 --cache cache "$@"; }

# The happy path, few-shot.
train --shots 5 --out model 2> /dev/null > /dev/null
"$CFM" calibrate --data data/cookie --model model --extractors ext --false-reject-rate 0.25 2> /dev/null > /dev/null
"$CFM" eval --data data/cookie --extractors ext --model model --out eval 2> /dev/null > /dev/null
"$CFM" eval --data data/cookie --baseline --shots 5 --out baseline 2> /dev/null > /dev/null
for f in model/manifest.yaml eval/metrics.json eval/scores.json baseline/metrics.json; do
    [ -s "$f" ] || { echo "FAIL happy path: no $f"; failures=$((failures + 1)); }
done
grep -q "threshold:" model/manifest.yaml || { echo "FAIL calibrate: no threshold in the manifest"; failures=$((failures + 1)); }
grep -q '"scorer" : "baseline"' baseline/metrics.json || { echo "FAIL eval --baseline: not marked as the baseline"; failures=$((failures + 1)); }
for key in "background_removal: true" "aggregation: product" "checksum: sha256:"; do
    grep -q "$key" model/manifest.yaml || { echo "FAIL train: no '$key' in the manifest"; failures=$((failures + 1)); }
done
echo "ok   train --shots 5 → calibrate → eval, and eval --baseline"

# The bundle sets tier and preprocessing: infer needs no --tier; serve refuses a config that differs.
"$CFM" infer --rgb data/cookie/test/good/rgb/000.png --xyz data/cookie/test/good/xyz/000.tiff --extractors ext \
    --model model --out infer > /dev/null 2> /dev/null
[ -s infer/result.json ] && grep -q '"tier" : "tiny"' infer/result.json \
    || { echo "FAIL infer without --tier: no tiny result.json"; failures=$((failures + 1)); }
printf 'model: {extractors: ext, bundle: model}\n' > serve-ok.yaml
"$CFM" serve --config serve-ok.yaml --check-config > /dev/null || { echo "FAIL serve --check-config of the bundle"; failures=$((failures + 1)); }
printf 'model: {extractors: ext, bundle: model}\npreprocessing: {seed: 5}\n' > serve-skew.yaml
refused "serve preprocessing skew" "preprocessing.seed is 5, but the bundle was trained with 0" \
    "$CFM" serve --config serve-skew.yaml --check-config
printf 'model: {tier: full, extractors: ext, bundle: model}\n' > serve-tier.yaml
refused "serve tier skew" "trained for tier tiny, but tier full" "$CFM" serve --config serve-tier.yaml --check-config
echo "ok   infer without --tier, serve --check-config against the bundle"

# The bench with the bundle's tier, on a synthetic frame and on a sample's files: the keys scripts read.
"$CFM" bench --frames 1 --sensor-size 96x64 --extractors ext --model model > bench-synthetic.json
sample=data/cookie/test/good
"$CFM" bench --frames 1 --extractors ext --model model --rgb $sample/rgb/000.png --xyz $sample/xyz/000.tiff > bench-files.json
python3 - bench-synthetic.json bench-files.json <<'PY' || failures=$((failures + 1))
import json, sys
keys = {"tier", "precision", "frames", "threads", "median_ms", "fps", "peak_rss_mb", "sensor", "preprocess_stages_ms",
        "preprocess_ns_per_pixel", "rss_growth_mb", "rss_growth_steady_mb", "rss_growth_bytes_per_pixel", "stages_ms",
        "gflop", "gflops_per_s", "foreground_points", "valid_pixels"}
for path, sensor in zip(sys.argv[1:], ({"height": 64, "width": 96}, {"height": 160, "width": 160})):
    bench = json.load(open(path))
    problems = [f"keys {sorted(keys ^ bench.keys())}"] if bench.keys() != keys else []
    problems += [f"{k} {bench.get(k)}" for k, v in (("tier", "tiny"), ("frames", 1), ("sensor", sensor)) if bench.get(k) != v]
    problems += [f"{k} without {sub}" for k, subs in (("rss_growth_mb", {"decode", "preprocess", "frame"}),
                                                      ("rss_growth_steady_mb", {"decode", "preprocess", "frame"}),
                                                      ("rss_growth_bytes_per_pixel", {"first", "steady"}))
                 for sub in subs - bench.get(k, {}).keys()]
    if problems: print(f"FAIL bench {path}: {'; '.join(problems)}"); sys.exit(1)
PY
refused "bench of a missing file" "missing.png: cannot read" \
    "$CFM" bench --frames 1 --extractors ext --model model --rgb missing.png --xyz $sample/xyz/000.tiff
echo "ok   bench on a synthetic frame and on files, with the bundle's tier"

# Datasets: empty, mislabelled (an RGB image without its point cloud), too few shots.
mkdir -p empty/cookie/train/good/rgb empty/cookie/train/good/xyz
refused "empty dataset" "no nominal samples in the train split" train --data empty/cookie --out m-empty
cp -r data/cookie mislabelled && rm mislabelled/train/good/xyz/002.tiff
refused "image without point cloud" "002.png: no matching" train --data mislabelled --out m-mislabelled
refused "not a class directory" "missing directory" train --data data --out m-root
refused "too few shots" "but data/cookie has 6 training samples" train --shots 7 --out m-shots
absent "refused training" m-empty m-mislabelled m-root m-shots

# Interrupted training: SIGINT mid-epoch leaves no bundle and no temporary directory.
status=0
timeout -s INT 8 "$CFM" train --data data/cookie --extractors ext --tier tiny --epochs 100000 --cache cache --out m-interrupted \
    2> /dev/null > /dev/null || status=$?
[ "$status" -eq 124 ] || { echo "FAIL interrupted training: status $status (expected the interrupt at 8 s)"; failures=$((failures + 1)); }
absent "interrupted training" m-interrupted
leftovers=$(find . -maxdepth 1 -name '*m-interrupted*' | wc -l)
[ "$leftovers" -eq 0 ] || { echo "FAIL interrupted training: $leftovers temporary entries left"; failures=$((failures + 1)); }
echo "ok   interrupted training left nothing behind"

# Bundles: other extractors, other tier, corrupt mapper, not a bundle; calibration without enough samples.
refused "other extractors" "trained with other extractor weights" \
    "$CFM" eval --data data/cookie --extractors other-ext --model model --out eval-other
refused "other tier" "trained for tier tiny, but tier small" \
    "$CFM" infer --rgb data/cookie/test/good/rgb/000.png --xyz data/cookie/test/good/xyz/000.tiff --extractors ext \
    --model model --tier small --out infer-tier
cp -r model corrupt && truncate -s 1000 corrupt/mapper_2d_to_3d.safetensors
refused "corrupt mapper" "corrupt or replaced" "$CFM" eval --data data/cookie --extractors ext --model corrupt --out eval-corrupt
refused "not a bundle" "not a model bundle" "$CFM" eval --data data/cookie --extractors ext --model ext --out eval-nobundle
refused "calibration rate" "cannot support a false-reject rate of 0.01" \
    "$CFM" calibrate --data data/cookie --model model --extractors ext
grep -q "^calibrate [0-9]" stderr && { echo "FAIL calibration rate: samples were scored before the refusal"; failures=$((failures + 1)); }
absent "refused bundles" eval-other infer-tier eval-corrupt eval-nobundle

if [ "$failures" -gt 0 ]; then echo "$failures CLI check(s) failed"; exit 1; fi
echo "all CLI checks passed"
