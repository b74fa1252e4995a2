#!/usr/bin/env bash
# cfm against ONNX Runtime and OpenVINO on the same weights and inputs, in one run: the 2D
# extractor (DINO ViT-B/8 at 224 pruned to the tier) and the map stage (the two mappers' GEMMs
# on one frame's rows), fp32 and bf16, every runtime on the same number of threads, medians
# after warm-up. Writes WORK/bench-peers.md (table, also printed) and WORK/bench-peers.json;
# exit status 1 if a peer's outputs disagree with cfm's/PyTorch's (so it compares the same
# computation). Dev-time only: the peers live in a virtual environment that this script creates
# and caches; nothing here is a run-time dependency of cfm, and scripts/test.sh does not run it.
#
# Usage: scripts/bench-peers.sh [--quick] [--tiers "tiny full"] [--runs N] [--rounds R]
#                               [--threads N] [--cfm PATH] [--work DIR]
#   --quick    tier tiny, 3 timed runs: checks that everything runs and agrees (minutes once the
#              environment is cached)
#   --tiers    default "tiny full" (1 and 12 blocks); any of tiny small medium full
#   --runs     timed runs per measurement (cfm bench frames), default 10
#   --rounds   default 1; with R > 1 every tier's measurements (cfm, then each peer) are repeated R
#              times in turn, and the table shows the median of the rounds' medians and the median
#              of the rounds' ratios with their range: each ratio compares runs minutes apart, so
#              a machine whose speed drifts (shared hosts) moves both sides of it alike
#   --threads  default 2; with more cores than this, every process is pinned to the first N
#   --cfm      a cfm binary (default: `swift build -c release` here, then its binary)
#   --work     weights, ONNX files, per-step JSON and the results (default /tmp/cfm-bench-peers)
# Environment: CFM_PEERS_CACHE = where the virtual environment is kept
#   (default ${XDG_CACHE_HOME:-~/.cache}/cfm-peers); it is rebuilt only when PEER_PACKAGES change.
# Needs Debian's /usr/bin/python3 with PyTorch 1.13, torchvision, timm 1.0.3 and safetensors
# (tools/reference/README.md) for the ONNX export, python3-venv and PyPI access for the peers.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PEER_PACKAGES="numpy==2.4.6 onnxruntime==1.32.0 openvino==2026.4.1 safetensors==0.8.0"
TIERS="tiny full" RUNS=10 ROUNDS=1 THREADS=2 CFM="" WORK=/tmp/cfm-bench-peers WARMUP=2
while (($#)); do
    case $1 in
        --quick) TIERS=tiny RUNS=3 WARMUP=1 ;;
        --tiers) TIERS=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --threads) THREADS=$2; shift ;;
        --cfm) CFM=$2; shift ;;
        --work) WORK=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-peers: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench-peers: --rounds must be a positive integer, not $ROUNDS" >&2; exit 2; }
CACHE=${CFM_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cfm-peers}
say() { echo "bench-peers: $*" >&2; }
die() { say "$*"; exit 2; }

# --- prerequisites: Debian's PyTorch side (export) -------------------------------------------
/usr/bin/python3 -c 'import torch, torchvision, safetensors, timm; assert timm.__version__ == "1.0.3"' 2>/dev/null ||
    die "/usr/bin/python3 needs PyTorch, torchvision, safetensors and timm 1.0.3:
  apt-get install python3-torch python3-torchvision python3-venv
  pip install --break-system-packages --no-deps timm==1.0.3 safetensors"

# --- the peers' virtual environment (idempotent, cached) -------------------------------------
VENV=$CACHE/venv
if [ "$(cat "$VENV/.peer-packages" 2>/dev/null)" != "$PEER_PACKAGES" ]; then
    say "creating $VENV ($PEER_PACKAGES)"
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PEER_PACKAGES
    echo "$PEER_PACKAGES" > "$VENV/.peer-packages"
fi
PY=$VENV/bin/python

# --- cfm ---------------------------------------------------------------------------------------
if [ -z "$CFM" ]; then
    command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
    swift build -c release >&2
    CFM=$(swift build -c release --show-bin-path)/cfm
fi
[ -x "$CFM" ] || die "no cfm binary at $CFM"
PIN=()
if (($(nproc) > THREADS)); then PIN=(taskset -c "0-$((THREADS - 1))"); fi
run() { "${PIN[@]}" "$@"; }
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=1

PRECISIONS=(fp32) NOTES=()
if "$CFM" bench --help | grep -q -- '--precision'; then
    PRECISIONS+=(bf16)
else
    NOTES+=("this cfm has no --precision option (\`cfm bench --help\`): no cfm bf16 column")
fi
EXTRACT_BF16=0
if [[ " ${PRECISIONS[*]} " == *" bf16 "* ]] && "$CFM" extract --help | grep -q -- '--precision'; then EXTRACT_BF16=1; fi
precision_flag() { [ "$1" = fp32 ] || echo "--precision $1"; }

# --- one run -----------------------------------------------------------------------------------
mkdir -p "$WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $LOAD_START; tiers: $TIERS; $RUNS runs; $THREADS threads; cfm: $CFM"
[ -f "$WORK/ext/vit.safetensors" ] || "$CFM" init-weights --seed 0 --out "$WORK/ext" >/dev/null
EXPORT=(/usr/bin/python3 "$REPO/tools/reference/export_peers.py")
BENCH_FILES=() PEER_FILES=()
# One tier's measurements in round $2: cfm bench per precision, then every peer.
measure_tier() {
    local t=$1 r=$2 p features
    for p in "${PRECISIONS[@]}"; do
        say "cfm bench $t $p (round $r of $ROUNDS)"
        # shellcheck disable=SC2046
        run "$CFM" bench --tier "$t" --frames "$RUNS" --extractors "$WORK/ext" --model "$WORK/map-$t" \
            $(precision_flag "$p") > "$WORK/cfm_bench_${p}_${t}_r$r.json"
        BENCH_FILES+=("$WORK/cfm_bench_${p}_${t}_r$r.json")
    done
    if ((r == 1)); then prepare_peers "$t"; fi
    features=(--cfm-features "$WORK/cfm_features_fp32_$t.safetensors")
    if ((EXTRACT_BF16)); then features+=(--cfm-features-bf16 "$WORK/cfm_features_bf16_$t.safetensors"); fi
    say "peers $t (round $r of $ROUNDS)"
    run "$PY" "$REPO/tools/reference/bench_peers.py" time --dir "$WORK/onnx-$t" --tier "$t" "${features[@]}" \
        --threads "$THREADS" --warmup "$WARMUP" --runs "$RUNS" --out "$WORK/peers_${t}_r$r.json"
    PEER_FILES+=("$WORK/peers_${t}_r$r.json")
}
# The tier's ONNX files (exported for the pixel count cfm's bench frame scores) and cfm's own
# features on the same input, which the peers' outputs are compared with.
prepare_peers() {
    local t=$1 pixels
    pixels=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["valid_pixels"])' "$WORK/cfm_bench_fp32_${t}_r1.json")
    if [ "$(cat "$WORK/onnx-$t/.pixels" 2>/dev/null)" != "$pixels" ]; then
        "${EXPORT[@]}" export --tier "$t" --weights "$WORK/ext" --mappers "$WORK/map-$t" --pixels "$pixels" \
            --out "$WORK/onnx-$t" >&2 2> >(grep -v -e TracerWarning -e 'assert condition' >&2)
        echo "$pixels" > "$WORK/onnx-$t/.pixels"
    fi
    "$CFM" extract --extractors "$WORK/ext" --tier "$t" --input "$WORK/onnx-$t/input.safetensors" \
        --out "$WORK/cfm_features_fp32_$t.safetensors"
    if ((EXTRACT_BF16)); then
        "$CFM" extract --extractors "$WORK/ext" --tier "$t" --precision bf16 --input "$WORK/onnx-$t/input.safetensors" \
            --out "$WORK/cfm_features_bf16_$t.safetensors"
    fi
}
for t in $TIERS; do
    [ -f "$WORK/map-$t/mapper_3d_to_2d.safetensors" ] || "${EXPORT[@]}" mappers --tier "$t" --out "$WORK/map-$t" >&2
done
for ((r = 1; r <= ROUNDS; r++)); do
    for t in $TIERS; do measure_tier "$t" "$r"; done
done
rm -f "$WORK"/cfm_features_*.safetensors  # 150 MB each (rgb_map)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

note_args=()
for n in "${NOTES[@]}"; do note_args+=(--note "$n"); done
status=0
"$PY" "$REPO/tools/reference/bench_peers.py" report --cfm-bench "${BENCH_FILES[@]}" --peers "${PEER_FILES[@]}" \
    --load-start "$LOAD_START" --load-end "$LOAD_END" "${note_args[@]}" --out "$WORK/bench-peers.json" \
    | tee "$WORK/bench-peers.md" || status=$?
say "wrote $WORK/bench-peers.md and $WORK/bench-peers.json"
exit "$status"
