# Sourced by the check scripts: make_tiny_model CFM DIR makes, in DIR, a small synthetic
# class (data/cookie: 160×160 px, 4 train, 4 validation, 1 test per type), seeded random
# extractors (ext) and a tiny-tier model bundle trained 1 epoch and calibrated (model).
# Nothing is made when DIR/model exists already. ~2 min on 2 cores (release build).
make_tiny_model() {
    local cfm=$1 dir=$2
    [ -d "$dir/model" ] && return 0
    (
        cd "$dir"
        "$cfm" synth --out data --classes cookie --size 160 --train 4 --validation 4 --test-per-type 1 --seed 3 > /dev/null
        "$cfm" init-weights --seed 0 --out ext > /dev/null
        "$cfm" train --data data/cookie --extractors ext --tier tiny --epochs 1 --shots 4 --out model 2> /dev/null > /dev/null
        "$cfm" calibrate --data data/cookie --model model --extractors ext --false-reject-rate 0.25 2> /dev/null > /dev/null
    )
}
