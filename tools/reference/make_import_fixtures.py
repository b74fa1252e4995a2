#!/usr/bin/python3
"""Fixtures of `cfm import`: small release checkpoints with the upstream key names and nesting.

Writes into Tests/Fixtures/import (or --out DIR):

  dino_vitbase8_pretrain.pth   DINO's plain state dict, tiny ViT (dim 16, 2 blocks), float32
  dino_full_checkpoint.pth     a full DINO checkpoint: teacher (backbone.*; bfloat16, two float64
                               tensors, one with delicate roundings, one transposed view), student,
                               DINO head, args Namespace, epoch
  vit_timm.safetensors         timm's state dict with its classifier head
  pretrain.pth                 Point-MAE's pretrain.pth: base_model (module.MAE_encoder.* in float16,
                               subnormals and specials included; decoder, mask token), optimizer
                               state, epoch, metrics
  CFM_2Dto3D_tiny_250ep_4bs.pth, CFM_3Dto2D_tiny_250ep_4bs.pth   the mappers (16 <-> 32, tier tiny)
  posix_system.pth             a state dict next to an object whose unpickling calls os.system
  short_storage.pth            the plain ViT with one storage record cut to half its length
  missing_key.pth              the plain ViT without blocks.1.mlp.fc2.bias
  expected.json                what tools/convert_checkpoints.py makes of each good file: per output
                               tensor its shape and the SHA-256 of its float32 little-endian bytes,
                               and the number of dropped keys

The sizes are the reduced ones of test_convert_checkpoints.py (the converter's size constants are
patched the same way); the key names and nesting are the releases'. Deterministic: re-running
rewrites identical tensors (the zip records of torch.save carry no timestamps).

Run with: /usr/bin/python3 tools/reference/make_import_fixtures.py
"""

import argparse
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fake_checkpoints import cc, pointmae_checkpoint, random_state

ROOT = Path(__file__).resolve().parents[2]

# The tiny architecture (Swift: ImportFixtures.architecture).
cc.VIT_DIM, cc.VIT_DEPTH, cc.PM_DIM, cc.PM_DEPTH = 16, 2, 32, 2
cc.MAPPER_DIMS = {(16, 32), (32, 16), (16, 96), (96, 16)}


def mapper_state(d_in, d_out, seed):
    h = (d_in + d_out) // 2
    return random_state({"input.weight": (h, d_in), "input.bias": (h,),
                         "projection.weight": (h, h), "projection.bias": (h,),
                         "output.weight": (d_out, h), "output.bias": (d_out,)}, seed)


class RunsShell:
    """Unpickling this object runs a shell command (what torch.load would do)."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/cfm-import-pwned",))


def tensor_digest(tensor):
    return hashlib.sha256(tensor.contiguous().numpy().astype("<f4").tobytes()).hexdigest()


def converted(source, out, kind):
    """Run the converter; return its output as {key: {shape, sha256}} and the dropped count."""
    _, tensors, dropped = cc.convert(source, out, kind)
    written = load_file(str(out))
    assert sorted(written) == sorted(tensors)
    return {"dropped": len(dropped),
            "tensors": {k: {"shape": list(v.shape), "sha256": tensor_digest(v)} for k, v in sorted(written.items())}}


def refused(source, kind):
    """The converter refuses `source` too (its message, for the record)."""
    try:
        cc.convert(source, source.with_suffix(".refused.safetensors"), kind)
    except cc.ConversionError as error:
        return str(error)
    raise AssertionError(f"{source} was accepted")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "Tests" / "Fixtures" / "import")
    out = parser.parse_args().out
    torch.manual_seed(0)  # the unchecked extras (heads, decoder) too, so re-runs are identical
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / ".converted"
    scratch.mkdir(exist_ok=True)
    expected = {}

    vit = random_state(cc.vit_shapes(), seed=1)
    torch.save(vit, out / "dino_vitbase8_pretrain.pth")
    expected["dino_vitbase8_pretrain.pth"] = converted(out / "dino_vitbase8_pretrain.pth", scratch / "a.safetensors", "vit")

    teacher = {k: v.to(torch.bfloat16) for k, v in random_state(cc.vit_shapes(), seed=2).items()}
    teacher["blocks.1.mlp.fc1.bias"] = teacher["blocks.1.mlp.fc1.bias"].double()
    # float64 values whose rounding to float32 is delicate: ties to even, overflow, subnormals, NaN.
    teacher["norm.bias"] = torch.tensor([1e-40, 1e39, -float("inf"), 1 + 2**-24, 1 + 3 * 2**-24, 3.4028235677973366e38,
                                         5e-324, -0.0, float("nan"), 0.1, 2**-150, 3 * 2**-150, -1e-45, 65504.0,
                                         1 / 3, -2.5], dtype=torch.float64)
    teacher["blocks.0.attn.proj.weight"] = torch.randn(16, 16, generator=torch.Generator().manual_seed(3)).t()
    assert not teacher["blocks.0.attn.proj.weight"].is_contiguous()
    student = random_state(cc.vit_shapes(), seed=4)
    head = {"head.mlp.0.weight": torch.randn(8, 16), "head.last_layer.weight_g": torch.randn(8, 1)}
    torch.save({"teacher": {**{"backbone." + k: v for k, v in teacher.items()}, **head},
                "student": {"module.backbone." + k: v for k, v in student.items()},
                "epoch": 100, "args": argparse.Namespace(arch="vit_base", patch_size=8, lr=0.0005, use_fp16=False)},
               out / "dino_full_checkpoint.pth")
    expected["dino_full_checkpoint.pth"] = converted(out / "dino_full_checkpoint.pth", scratch / "b.safetensors", "vit")

    timm = random_state(cc.vit_shapes(), seed=5)
    save_file({**timm, "head.weight": torch.randn(10, 16), "head.bias": torch.randn(10)}, str(out / "vit_timm.safetensors"))
    expected["vit_timm.safetensors"] = converted(out / "vit_timm.safetensors", scratch / "c.safetensors", "vit")

    encoder = {k: v.half() for k, v in random_state(cc.pointmae_shapes(), seed=6).items()}
    # float16 subnormals, extremes and specials widen exactly.
    encoder["norm.bias"][:8] = torch.tensor([2**-24, 6e-6, 2**-14, 65504.0, float("inf"), -float("inf"), -0.0,
                                             float("nan")], dtype=torch.float16)
    optimizer = {"state": {i: {"step": 300, "exp_avg": torch.zeros(4), "exp_avg_sq": torch.zeros(4)} for i in range(3)},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05,
                                   "amsgrad": False, "params": [0, 1, 2]}]}
    torch.save(pointmae_checkpoint(encoder, optimizer), out / "pretrain.pth")
    expected["pretrain.pth"] = converted(out / "pretrain.pth", scratch / "d.safetensors", "pointmae")

    for name, (d_in, d_out), seed, prefix in [("CFM_2Dto3D_tiny_250ep_4bs.pth", (16, 32), 7, "module."),
                                              ("CFM_3Dto2D_tiny_250ep_4bs.pth", (32, 16), 8, "")]:
        state = mapper_state(d_in, d_out, seed)
        torch.save({prefix + k: v for k, v in state.items()}, out / name)
        direction = "2d_to_3d" if d_in == 16 else "3d_to_2d"
        expected[name] = converted(out / name, scratch / f"mapper_{direction}.safetensors", "mapper")

    torch.save({"model": vit, "payload": RunsShell()}, out / "posix_system.pth")
    assert "refusing to unpickle posix.system" in refused(out / "posix_system.pth", "vit")

    with zipfile.ZipFile(out / "dino_vitbase8_pretrain.pth") as source, \
            zipfile.ZipFile(out / "short_storage.pth", "w", zipfile.ZIP_STORED) as short:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("/data/0"):
                data = data[: len(data) // 2]
            info.filename = info.filename.replace("dino_vitbase8_pretrain/", "short_storage/")
            short.writestr(info, data)

    del vit["blocks.1.mlp.fc2.bias"]
    torch.save(vit, out / "missing_key.pth")
    assert "missing key blocks.1.mlp.fc2.bias" in refused(out / "missing_key.pth", "vit")

    for f in scratch.iterdir():
        f.unlink()
    scratch.rmdir()
    for f in out.glob("*.refused.safetensors"):
        f.unlink()
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    for f in sorted(out.iterdir()):
        print(f"{f.stat().st_size:8d}  {f}")


if __name__ == "__main__":
    sys.exit(main())
