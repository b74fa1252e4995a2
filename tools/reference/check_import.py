#!/usr/bin/python3
"""Full-size check of `cfm import` against tools/convert_checkpoints.py, bit for bit.

Fabricates the four kinds of release file with the real shapes and nesting (random float32
values): DINO's dino_vitbase8_pretrain.pth (a plain state dict of 150 keys), Point-MAE's
pretrain.pth (base_model with module.MAE_encoder.* and the decoder, the AdamW state of every
parameter, epoch, metrics) and the CFM mappers CFM_2Dto3D_/CFM_3Dto2D_bagel_250ep_4bs.pth
(768 <-> 1152). Runs `cfm import` on them (timed) and the converter on each file, then compares
every tensor of the two outputs byte for byte, and checks the bundle's manifest (tier full,
SHA-256 of every source).

Usage: /usr/bin/python3 tools/reference/check_import.py --cfm .build/release/cfm [--work DIR]
"""

import argparse
import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("convert_checkpoints", ROOT / "tools" / "convert_checkpoints.py")
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)


def random_state(shapes, gen):
    return {k: torch.randn(*shape, generator=gen) for k, shape in shapes.items()}


def fabricate(work):
    """The four release files under `work`; returns their paths by role."""
    gen = torch.Generator().manual_seed(0)
    files = {"vit": work / "dino_vitbase8_pretrain.pth", "pointmae": work / "pretrain.pth",
             "mapper_2d_to_3d": work / "CFM_2Dto3D_bagel_250ep_4bs.pth",
             "mapper_3d_to_2d": work / "CFM_3Dto2D_bagel_250ep_4bs.pth"}
    vit = random_state(cc.vit_shapes(), gen)
    assert len(vit) == 150
    torch.save(vit, files["vit"])

    encoder = random_state(cc.pointmae_shapes(), gen)
    decoder_shapes = {"mask_token": (1, 1, 384), "decoder_pos_embed.0.weight": (128, 3), "decoder_pos_embed.0.bias": (128,),
                      "decoder_pos_embed.2.weight": (384, 128), "decoder_pos_embed.2.bias": (384,),
                      "MAE_decoder.norm.weight": (384,), "MAE_decoder.norm.bias": (384,),
                      "increase_dim.0.weight": (96, 384, 1), "increase_dim.0.bias": (96,)}
    for i in range(4):
        decoder_shapes.update(cc.transformer_block_shapes(f"MAE_decoder.blocks.blocks.{i}.", 384, qkv_bias=False))
    base = {"module.MAE_encoder." + k: v for k, v in encoder.items()}
    base.update({"module." + k: v for k, v in random_state(decoder_shapes, gen).items()})
    for conv in ("first_conv", "second_conv"):
        base[f"module.MAE_encoder.encoder.{conv}.1.num_batches_tracked"] = torch.tensor(300 * 41)
    params = [v for k, v in base.items() if not k.endswith("num_batches_tracked")]
    optimizer = {"state": {i: {"step": 12300, "exp_avg": torch.randn(p.shape, generator=gen),
                               "exp_avg_sq": torch.rand(p.shape, generator=gen)} for i, p in enumerate(params)},
                 "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05,
                                   "amsgrad": False, "initial_lr": 1e-3, "params": list(range(len(params)))}]}
    torch.save({"base_model": base, "optimizer": optimizer, "epoch": 300,
                "metrics": {"acc": 0.0}, "best_metrics": {"acc": 0.0}}, files["pointmae"])

    for role, (d_in, d_out) in (("mapper_2d_to_3d", (768, 1152)), ("mapper_3d_to_2d", (1152, 768))):
        h = (d_in + d_out) // 2
        torch.save(random_state({"input.weight": (h, d_in), "input.bias": (h,), "projection.weight": (h, h),
                                 "projection.bias": (h,), "output.weight": (d_out, h), "output.bias": (d_out,)}, gen),
                   files[role])
    return files


def identical(a_path, b_path):
    """(equal, detail): same keys, shapes, float32 dtype and bytes."""
    a, b = load_file(str(a_path)), load_file(str(b_path))
    if sorted(a) != sorted(b):
        return False, f"keys differ: {sorted(set(a) ^ set(b))[:5]}"
    for key in a:
        x, y = a[key], b[key]
        if x.dtype != torch.float32 or y.dtype != torch.float32 or x.shape != y.shape:
            return False, f"{key}: {x.dtype} {list(x.shape)} vs {y.dtype} {list(y.shape)}"
        if not torch.equal(x.view(torch.int32), y.view(torch.int32)):
            return False, f"{key}: bytes differ"
    return True, f"{len(a)} tensors, {sum(v.numel() for v in a.values())} values"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfm", type=Path, default=ROOT / ".build" / "release" / "cfm")
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cfm-check-import-"))
    work.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    files = fabricate(work)
    print(f"fabricated in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in files.values()))

    out = work / "imported"
    started = time.perf_counter()
    subprocess.run([str(args.cfm), "import", "--vit", files["vit"], "--pointmae", files["pointmae"],
                    "--mapper-2d-to-3d", files["mapper_2d_to_3d"], "--mapper-3d-to-2d", files["mapper_3d_to_2d"],
                    "--out", out], check=True)
    swift_seconds = time.perf_counter() - started

    converted = work / "converted"
    converted.mkdir(exist_ok=True)
    outputs = {"vit": (out / "extractors/vit.safetensors", "vit"),
               "pointmae": (out / "extractors/pointmae.safetensors", "pointmae"),
               "mapper_2d_to_3d": (out / "model/mapper_2d_to_3d.safetensors", "mapper"),
               "mapper_3d_to_2d": (out / "model/mapper_3d_to_2d.safetensors", "mapper")}
    failures = 0
    started = time.perf_counter()
    for role, (ours, kind) in outputs.items():
        reference = converted / f"{role}.safetensors"
        cc.convert(files[role], reference, kind)
    python_seconds = time.perf_counter() - started
    for role, (ours, _) in outputs.items():
        equal, detail = identical(ours, converted / f"{role}.safetensors")
        failures += not equal
        print(f"{role:16s} {'identical' if equal else 'DIFFERENT'}: {detail}")

    manifest = yaml.safe_load((out / "model/manifest.yaml").read_text())
    digests = {s["role"]: s["sha256"] for s in manifest["provenance"]["sources"]}
    for role, path in files.items():
        if digests.get(role) != hashlib.sha256(path.read_bytes()).hexdigest():
            failures += 1
            print(f"{role}: provenance SHA-256 differs")
    if manifest["tier"] != "full":
        failures += 1
        print(f"tier {manifest['tier']}, expected full")
    print(f"cfm import {swift_seconds:.1f} s; convert_checkpoints.py (4 files, torch.load) {python_seconds:.1f} s; "
          f"manifest tier {manifest['tier']}, {len(digests)} sources")
    print("OK" if failures == 0 else f"{failures} FAILURES")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
