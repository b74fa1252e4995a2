#!/usr/bin/python3
"""Full-size parity check of the Swift DINO ViT-B/8 extractor against timm.

1. `cfm init-weights --seed N --out WORK/weights` writes seeded random weights.
2. The weights are loaded (strictly) into timm's `vit_base_patch8_224.dino`.
3. A seeded smooth random RGB image in [0,1], normalised with the ImageNet
   mean/std, is written to WORK/input.safetensors as `rgb_input` [3,224,224].
4. For every tier, `cfm extract` and the pruned timm model (first L blocks,
   final norm, cls dropped) produce `rgb_features` [768,28,28] and the bilinear
   upsampled `rgb_map` [768,224,224]; both are compared.

Per tier it prints the max abs difference, the max |reference| and their ratio
for the features and the map, the PyTorch times of the features and of the
upsampling (medians of --repeats runs on --threads threads) and the wall time
of `cfm extract` (which includes loading the weights and writing the 150 MB
output).  Exits 1 if any ratio exceeds the
tolerance (default 1e-3 of each feature map's max |value|) or a `cfm` command fails.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

TIERS = {"tiny": 1, "small": 4, "medium": 8, "full": 12}
IMAGE_SIZE, GRID, DIM = 224, 28, 768
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


class ParityError(Exception):
    """A failed `cfm` command or a malformed output."""


def run_cfm(cfm, *args):
    """Run the cfm binary; return its wall time in seconds, raise ParityError on failure."""
    command = [str(cfm), *map(str, args)]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        raise ParityError(f"cannot run {cfm}: {error.strerror}") from None
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise ParityError(f"{' '.join(command)} exited with {result.returncode}: {reason}")
    return elapsed


def load_timm_model(weights):
    """timm's vit_base_patch8_224.dino with the given weights, loaded strictly."""
    model = timm.create_model("vit_base_patch8_224.dino", pretrained=False, num_classes=0)
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as error:  # lists every missing, unexpected or misshaped key
        details = " ".join(str(error).split())
        raise ParityError(f"{weights} does not fit timm's ViT-B/8: {details[:500]}") from None
    return model.eval()


def smooth_image(seed):
    """A normalised [3,224,224] image: three octaves of bicubic-upsampled noise in [0,1]."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE)
    for cells, weight in ((4, 0.6), (14, 0.3), (56, 0.1)):
        noise = torch.rand(1, 3, cells, cells, generator=gen)
        image += weight * F.interpolate(noise, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bicubic",
                                        align_corners=False)[0]
    return ((image.clamp(0, 1) - MEAN) / STD).contiguous()


def reference_features(model, image, depth):
    """Pruned forward: embed, first `depth` blocks, final norm, drop cls -> [768,28,28]."""
    x = model.patch_embed(image[None])
    x = model.norm_pre(model.patch_drop(model._pos_embed(x)))
    x = model.blocks[:depth](x)
    x = model.norm(x)
    return x[0, 1:].transpose(0, 1).reshape(DIM, GRID, GRID).contiguous()


def upsample(features):
    """Bilinear (align_corners=False) upsampling to 224x224."""
    return F.interpolate(features[None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                         align_corners=False)[0]


def check_pruning(model, image):
    """The pruned forward with all 12 blocks must equal timm's forward_features."""
    full = model.forward_features(image[None])[0, 1:].transpose(0, 1).reshape(DIM, GRID, GRID)
    if not torch.equal(full, reference_features(model, image, len(model.blocks))):
        raise ParityError("pruned reference forward differs from timm forward_features")


def time_reference(model, image, depth, repeats):
    """Run the reference `repeats` times; return the median seconds of the features
    and of the upsampling, the features and the upsampled map."""
    feature_times, upsample_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        features = reference_features(model, image, depth)
        middle = time.perf_counter()
        upsampled = upsample(features)
        feature_times.append(middle - start)
        upsample_times.append(time.perf_counter() - middle)
    return (statistics.median(feature_times), statistics.median(upsample_times),
            features, upsampled)


def compare(got, reference, name):
    """(max abs diff, max |reference|, ratio) of one output."""
    if got.shape != reference.shape or got.dtype != torch.float32:
        raise ParityError(f"{name} is {got.dtype} {list(got.shape)}, "
                          f"expected torch.float32 {list(reference.shape)}")
    diff = (got - reference).abs().max().item()
    scale = reference.abs().max().item()
    return diff, scale, diff / scale


def swift_outputs(cfm, weights_dir, tier, input_path, out_path):
    """Run `cfm extract` for one tier; return (wall time, {name: tensor})."""
    wall = run_cfm(cfm, "extract", "--extractors", weights_dir, "--tier", tier,
                   "--input", input_path, "--out", out_path)
    outputs = load_file(str(out_path))
    missing = {"rgb_features", "rgb_map"} - set(outputs)
    if missing:
        raise ParityError(f"{out_path} lacks {', '.join(sorted(missing))}")
    return wall, outputs


def check_tier(args, model, image, work, tier):
    """Compare one tier; print its row and return whether it is within tolerance."""
    depth = TIERS[tier]
    out_path = work / f"out_{tier}.safetensors"
    wall, outputs = swift_outputs(args.cfm, work / "weights", tier, work / "input.safetensors",
                                  out_path)
    feature_time, upsample_time, features, upsampled = time_reference(model, image, depth,
                                                                      args.repeats)
    rows = [compare(outputs["rgb_features"], features, "rgb_features"),
            compare(outputs["rgb_map"], upsampled, "rgb_map")]
    out_path.unlink()
    ok = all(ratio <= args.tolerance for _, _, ratio in rows)
    cells = "  ".join(f"{d:9.2e} {s:8.3f} {r:9.2e}" for d, s, r in rows)
    print(f"{tier:6s} {depth:2d}  {cells}  {feature_time * 1e3:7.0f} {upsample_time * 1e3:6.0f}"
          f" {wall:8.2f}  "
          f"{'ok' if ok else 'FAIL'}", flush=True)
    return ok


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfm", type=Path, required=True, help="path of the cfm binary")
    parser.add_argument("--seed", type=int, default=0, help="weight and image seed (default 0)")
    parser.add_argument("--tiers", default=",".join(TIERS),
                        help="comma-separated tiers to check (default: all)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="maximum allowed diff / max ratio (default 1e-3)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="PyTorch timing runs per tier, median reported (default 3)")
    parser.add_argument("--workdir", type=Path,
                        help="keep weights and input here (default: a temporary directory)")
    args = parser.parse_args(argv)
    args.tiers = args.tiers.split(",")
    unknown = set(args.tiers) - set(TIERS)
    if unknown:
        parser.error(f"unknown tier(s): {', '.join(sorted(unknown))}")
    return args


def run_checks(args, work):
    """Generate weights and input in `work`, check every tier; return overall success."""
    run_cfm(args.cfm, "init-weights", "--seed", args.seed, "--out", work / "weights")
    model = load_timm_model(work / "weights" / "vit.safetensors")
    image = smooth_image(args.seed)
    save_file({"rgb_input": image}, str(work / "input.safetensors"))
    with torch.no_grad():
        check_pruning(model, image)
        print(f"{'tier':6s} {'L':>2s}  {'feat diff':>9s} {'feat max':>8s} {'ratio':>9s}  "
              f"{'map diff':>9s} {'map max':>8s} {'ratio':>9s}  {'feat ms':>7s} {'up ms':>6s}"
              f" {'cfm s':>8s}")
        results = [check_tier(args, model, image, work, tier) for tier in args.tiers]
    return all(results)


def run_parity_main(name, args, run_checks):
    """The shared driver of the parity scripts: run `run_checks(args, workdir)` in
    `args.workdir` or a temporary directory; print the verdict; return the exit status."""
    torch.set_num_threads(args.threads)
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            ok = run_checks(args, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
                ok = run_checks(args, Path(tmp))
    except ParityError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    print("parity ok" if ok else f"parity FAILED (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def main(argv=None):
    return run_parity_main("check_vit_parity", parse_args(argv), run_checks)


if __name__ == "__main__":
    sys.exit(main())
