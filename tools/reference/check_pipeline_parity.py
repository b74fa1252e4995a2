#!/usr/bin/python3
"""Full-size parity check of the Swift CFM pipeline against the PyTorch reference.

1. `cfm init-weights --seed N --out WORK/weights` writes seeded random ViT-B/8 and
   Point-MAE weights (with --reference-only, Python writes random weights instead).
2. Random mapper weights (PyTorch's Linear default init, seeded) for D3D = 384
   (tiny) and 1152 (other tiers) are written to WORK/model_384 and WORK/model_1152.
3. A synthetic 224x224 frame is written to WORK/input.safetensors: `rgb_input`
   [3,224,224] (smooth texture, normalised) and `xyz_input` [224,224,3] (a domed,
   bumpy part ~0.5 m from the camera after background removal: ~40% of the
   pixels, ~20 000 foreground points, zeros elsewhere).
4. For every tier with frame BatchNorm, and for --running-tiers with running
   BatchNorm, `cfm extract --model` and `cfm_reference.full_pipeline` (float32,
   --threads threads) are run and every output is compared: max abs diff, max
   |reference| and their ratio (limit --tolerance); `foreground` must be equal;
   `center_indices` (FPS) must be identical and every KNN group in `groups`
   must hold the same set of points (order inside a group is irrelevant).

It prints the reference's wall time per stage (median of --repeats runs, for the
speed comparison) and the
wall time of `cfm extract` (which includes loading weights and writing ~400 MB).
Exits 1 on any failure.  --reference-only runs the reference alone (no `cfm`
needed) and prints its timings and self-checks.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file

import cfm_reference as ref
from check_vit_parity import ParityError, load_timm_model, run_cfm, run_parity_main, smooth_image
from make_pipeline_fixtures import knn_margin, object_xyz

SIZE = 224
FLOAT_KEYS = ("rgb_features", "rgb_map", "centers", "xyz_features", "xyz_map", "psi2d", "psi3d",
              "anomaly_map", "score")
ALL_KEYS = FLOAT_KEYS + ("foreground", "center_indices", "groups")
STAGES = ("vit", "upsample", "foreground", "fps", "knn", "pointmae", "interpolate", "align",
          "mappers", "score")


def d3d_of(tier):
    return 384 if tier == "tiny" else 1152


# ------------------------------------------------------------------ inputs


def synthetic_frame(seed):
    """(rgb [3,224,224] normalised, xyz [224,224,3]) of a part after background removal."""
    gen = torch.Generator().manual_seed(seed + 1)
    xyz = object_xyz(gen, SIZE, focal=300.0, semi_axes=(86.0, 69.0))
    return smooth_image(seed), xyz


def write_mappers(seed, d3d, directory):
    """Mapper pair with PyTorch's default Linear init (seeded) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed * 7919 + d3d)
    pair = {"mapper_2d_to_3d": ref.Mapper(768, d3d), "mapper_3d_to_2d": ref.Mapper(d3d, 768)}
    for name, mapper in pair.items():
        save_file({k: v.contiguous() for k, v in mapper.state_dict().items()},
                  str(directory / f"{name}.safetensors"))
    return pair


def randomise_norms(model):
    """LayerNorm/BatchNorm weights 1 + N(0, 0.05^2), biases N(0, 0.05^2); BatchNorm
    running means N(0, 0.05^2), variances 1 + |N(0, 0.1^2)| (as `cfm init-weights`).

    Not optional: with the default init (weight 1, bias 0) every 3D feature is a
    LayerNorm output that sums to ~0 over its channels, and the "sums to exactly 0"
    pixel mask then depends on rounding noise."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                module.weight.copy_(1 + 0.05 * torch.randn_like(module.weight))
                module.bias.copy_(0.05 * torch.randn_like(module.bias))
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(0.05 * torch.randn_like(module.running_mean))
                module.running_var.copy_(1 + (0.1 * torch.randn_like(module.running_var)).abs())


def python_weights(seed, directory):
    """Reference-only mode: random full-size extractor weights written by Python
    (timm's and PyTorch's default inits, then `randomise_norms`)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vit = timm.create_model("vit_base_patch8_224.dino", pretrained=False, num_classes=0)
    pm = ref.PointMAEEncoder(**ref.POINTMAE_FULL)
    randomise_norms(vit)
    randomise_norms(pm)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(directory / "vit.safetensors"))
    save_file({k: v.contiguous() for k, v in pm.weights().items()}, str(directory / "pointmae.safetensors"))


def load_pointmae(path):
    try:
        return ref.PointMAEEncoder(**ref.POINTMAE_FULL).load_weights(load_file(str(path))).eval()
    except ValueError as error:
        raise ParityError(f"{path}: {error}") from None


# ------------------------------------------------------------- comparison


def group_sets_equal(got, expected):
    """Number of groups whose point sets agree."""
    a = torch.sort(got.round().long(), dim=1).values
    b = torch.sort(expected.long(), dim=1).values
    return int((a == b).all(dim=1).sum())


def compare_outputs(got, reference, tolerance):
    """Print one row per key; return whether everything is within limits."""
    ok = True
    missing = [k for k in ALL_KEYS if k not in got]
    if missing:
        print(f"    missing outputs: {', '.join(missing)}")
        ok = False
    for key in ALL_KEYS:
        if key not in got:
            continue
        g, r = got[key], reference[key]
        if list(g.shape) != list(r.shape):
            print(f"    {key:15s} shape {list(g.shape)}, expected {list(r.shape)}  FAIL")
            ok = False
            continue
        if key == "center_indices":
            same = torch.equal(g.round().long(), r.long())
            first = "" if same else f" (first difference at centre {int(torch.nonzero(g.round().long() != r.long())[0])})"
            print(f"    {key:15s} FPS indices identical: {'yes' if same else 'NO' + first}")
            ok &= same
        elif key == "groups":
            n = group_sets_equal(g, r)
            print(f"    {key:15s} same point sets: {n}/{r.shape[0]} groups"
                  f"{'' if n == r.shape[0] else '  FAIL'}")
            ok &= n == r.shape[0]
        elif key == "foreground":
            bad = int((g != r.to(g.dtype)).sum())
            print(f"    {key:15s} {int(r.sum())} pixels, {bad} differ{'' if bad == 0 else '  FAIL'}")
            ok &= bad == 0
        else:
            diff = (g.double() - r.double()).abs().max().item()
            scale = r.double().abs().max().item()
            ratio = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
            good = ratio <= tolerance
            print(f"    {key:15s} diff {diff:9.2e}  max {scale:9.3e}  ratio {ratio:9.2e}"
                  f"{'' if good else '  FAIL'}")
            ok &= good
    return ok


def print_timings(seconds, label="reference ms"):
    cells = " ".join(f"{s} {seconds.get(s, 0) * 1e3:.0f}" for s in STAGES if s in seconds)
    print(f"    {label}: {cells} | total {sum(seconds.values()) * 1e3:.0f}", flush=True)


# -------------------------------------------------------------------- runs


def reference_run(models, rgb, xyz, tier, batchnorm, dtype, repeats=1):
    """full_pipeline in `dtype`; `timings` holds the per-stage medians of `repeats` runs."""
    vit, pm, mappers = models
    m23, m32 = mappers[d3d_of(tier)]
    for m in (vit, pm, m23, m32):
        m.to(dtype)
    runs = [ref.full_pipeline(rgb.to(dtype), xyz.to(dtype), vit, pm, m23, m32, tier, batchnorm)
            for _ in range(repeats)]
    for m in (vit, pm, m23, m32):
        m.float()
    out = runs[-1]
    out["timings"] = {s: statistics.median(r["timings"][s] for r in runs) for s in out["timings"]}
    return out


def run_checks(args, work):
    weights = work / "weights"
    if args.reference_only:
        python_weights(args.seed, weights)
    else:
        run_cfm(args.cfm, "init-weights", "--seed", args.seed, "--out", weights)
    vit = load_timm_model(weights / "vit.safetensors")
    pm = load_pointmae(weights / "pointmae.safetensors")
    needed = sorted({d3d_of(t) for t in args.tiers + args.running_tiers})
    mappers = {}
    for d3d in needed:
        pair = write_mappers(args.seed, d3d, work / f"model_{d3d}")
        mappers[d3d] = (pair["mapper_2d_to_3d"].eval(), pair["mapper_3d_to_2d"].eval())
    rgb, xyz = synthetic_frame(args.seed)
    save_file({"rgb_input": rgb, "xyz_input": xyz}, str(work / "input.safetensors"))
    pixels, points, _ = ref.foreground_points(xyz)
    print(f"frame: {len(points)} foreground points ({len(points) / SIZE ** 2:.1%} of the pixels)")
    start = time.perf_counter()
    fps32 = ref.fps(points, 1024)
    fps64 = ref.fps(points, 1024, dtype=torch.float64)
    print(f"frame: FPS float32 == float64: {'yes' if torch.equal(fps32, fps64) else 'NO'}; "
          f"KNN k-th/(k+1)-th min relative gap {knn_margin(points, points[fps32], 128):.1e} "
          f"({time.perf_counter() - start:.1f} s)", flush=True)

    runs = [(t, "frame") for t in args.tiers] + [(t, "running") for t in args.running_tiers]
    models = (vit, pm, mappers)
    ok = True
    for tier, batchnorm in runs:
        print(f"{tier} (ViT {ref.TIER_BLOCKS[tier]} blocks, Point-MAE {ref.TIER_BLOCKS[tier]} blocks, "
              f"D3D {d3d_of(tier)}), batchnorm {batchnorm}", flush=True)
        with torch.no_grad():
            out = reference_run(models, rgb, xyz, tier, batchnorm, args.dtype, args.repeats)
        print_timings(out["timings"])
        if args.reference_only:
            print(f"    score {out['score'].item():.4f}, anomaly_map max {out['anomaly_map'].max().item():.4f},"
                  f" unmasked pixels {int((out['xyz_map'].sum(0) != 0).sum())}")
            if args.compare_float64 and args.dtype == torch.float32:
                with torch.no_grad():
                    out64 = reference_run(models, rgb, xyz, tier, batchnorm, torch.float64)
                print("    float32 reference vs float64 reference:")
                ok &= compare_outputs({k: out[k] for k in ALL_KEYS}, out64, args.tolerance)
            continue
        out_path = work / f"out_{tier}_{batchnorm}.safetensors"
        wall = run_cfm(args.cfm, "extract", "--extractors", weights, "--tier", tier,
                       "--input", work / "input.safetensors", "--out", out_path,
                       "--model", work / f"model_{d3d_of(tier)}", "--batchnorm", batchnorm)
        print(f"    cfm extract wall time: {wall:.2f} s")
        got = load_file(str(out_path))
        out_path.unlink()
        ok &= compare_outputs(got, out, args.tolerance)
    return ok


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfm", type=Path, help="path of the cfm binary")
    parser.add_argument("--reference-only", action="store_true",
                        help="run only the PyTorch reference (Python-generated weights)")
    parser.add_argument("--compare-float64", action="store_true",
                        help="with --reference-only: also run in float64 and compare")
    parser.add_argument("--seed", type=int, default=0, help="weight, mapper and frame seed (default 0)")
    parser.add_argument("--tiers", default=",".join(ref.TIER_BLOCKS),
                        help="comma-separated tiers with frame BatchNorm (default: all)")
    parser.add_argument("--running-tiers", default="small",
                        help="tiers also run with running BatchNorm (default: small; '' for none)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="maximum allowed diff / max ratio (default 1e-3)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="reference runs per check, per-stage median reported (default 1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="reference precision (default float32)")
    parser.add_argument("--workdir", type=Path,
                        help="keep weights, mappers and input here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if not args.reference_only and args.cfm is None:
        parser.error("--cfm is required unless --reference-only")
    args.tiers = [t for t in args.tiers.split(",") if t]
    args.running_tiers = [t for t in args.running_tiers.split(",") if t]
    unknown = set(args.tiers + args.running_tiers) - set(ref.TIER_BLOCKS)
    if unknown:
        parser.error(f"unknown tier(s): {', '.join(sorted(unknown))}")
    args.dtype = getattr(torch, args.dtype)
    return args


def main(argv=None):
    return run_parity_main("check_pipeline_parity", parse_args(argv), run_checks)


if __name__ == "__main__":
    sys.exit(main())
