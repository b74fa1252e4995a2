#!/usr/bin/python3
"""Generate the golden safetensors fixtures used by the Swift tests.

Writes two files (default directory: Tests/Fixtures of the repository):

* ``vit_tiny.safetensors`` -- a tiny timm VisionTransformer (the DINO ViT-B/8
  architecture at toy size) with randomised weights,
  an input image and the trace of every stage of the forward pass.
* ``kernels.safetensors`` -- input/output pairs for the individual kernels
  (GELU, LayerNorm, softmax, attention, patchify, resizing, pooling, ...).

All weights and inputs are drawn in float32 from seeded generators.  The
reference outputs are computed by PyTorch in float64 from exactly those float32
values and rounded to float32 once, so they carry no float32 accumulation
error of their own.  Re-running the script reproduces the files byte for byte.
"""

import argparse
import json
import struct
import zlib
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures"

VIT_CONFIG = dict(image_size=32, patch_size=8, dim=32, heads=2, depth=2, mlp_hidden=128, eps=1e-6)


def generator(name):
    """A torch.Generator seeded from `name`, so every fixture has its own stream."""
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def randn(gen, *shape, std=1.0):
    """Float32 normal samples with the given standard deviation."""
    return torch.randn(*shape, generator=gen) * std


def to_fixture(tensor):
    """Round a tensor to contiguous float32 for storage."""
    return tensor.detach().to(torch.float32).contiguous()


# --------------------------------------------------------------------------- ViT


def build_tiny_vit():
    """The timm VisionTransformer of the fixture, in eval mode."""
    c = VIT_CONFIG
    model = VisionTransformer(
        img_size=c["image_size"], patch_size=c["patch_size"], in_chans=3, num_classes=0,
        embed_dim=c["dim"], depth=c["depth"], num_heads=c["heads"],
        mlp_ratio=c["mlp_hidden"] / c["dim"], qkv_bias=True, class_token=True,
        global_pool="token", norm_layer=partial(nn.LayerNorm, eps=c["eps"]))
    check_tiny_vit_structure(model)
    return model.eval()


def check_tiny_vit_structure(model):
    """Assert that timm built the DINO ViT architecture: no pre-norm, final LayerNorm, no head."""
    assert isinstance(model.norm_pre, nn.Identity), "unexpected pre-norm"
    assert isinstance(model.norm, nn.LayerNorm) and model.norm.eps == VIT_CONFIG["eps"]
    assert isinstance(model.fc_norm, nn.Identity) and isinstance(model.head, nn.Identity)
    for block in model.blocks:
        assert isinstance(block.ls1, nn.Identity) and isinstance(block.ls2, nn.Identity)
        assert block.norm1.eps == block.norm2.eps == VIT_CONFIG["eps"]
        assert isinstance(block.mlp.act, nn.GELU) and block.mlp.act.approximate == "none"
        assert block.attn.qkv.bias is not None
        assert isinstance(block.attn.q_norm, nn.Identity)
        assert isinstance(block.mlp.norm, nn.Identity)


def randomise_vit(model, gen):
    """Overwrite every parameter with random values (nonzero biases, non-unit norms).

    Linear/conv weights ~ N(0, 0.2 * sqrt(32 / fan_in)) (std 0.2 at fan-in 32),
    biases ~ N(0, 0.2), LayerNorm weights 1 + N(0, 0.2), LayerNorm biases
    N(0, 0.2), cls_token and pos_embed N(0, 0.5).
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + randn(gen, *module.weight.shape, std=0.2))
                module.bias.copy_(randn(gen, *module.bias.shape, std=0.2))
            elif isinstance(module, (nn.Linear, nn.Conv2d)):
                fan_in = module.weight[0].numel()
                std = 0.2 * (32 / fan_in) ** 0.5
                module.weight.copy_(randn(gen, *module.weight.shape, std=std))
                module.bias.copy_(randn(gen, *module.bias.shape, std=0.2))
        model.cls_token.copy_(randn(gen, *model.cls_token.shape, std=0.5))
        model.pos_embed.copy_(randn(gen, *model.pos_embed.shape, std=0.5))


def tokens_to_feature_map(tokens, grid):
    """[1+grid*grid, C] tokens (cls first) -> [C, grid, grid] channel-major map."""
    return tokens[1:].transpose(0, 1).reshape(-1, grid, grid)


def vit_trace(model, image):
    """Run the model stage by stage on one [3,H,W] image; return the trace tensors."""
    c = VIT_CONFIG
    grid = c["image_size"] // c["patch_size"]
    trace = {}
    x = model.patch_embed(image[None])
    trace["trace.patch_embed"] = x[0]
    x = model._pos_embed(x)
    trace["trace.embed"] = x[0]
    for i, block in enumerate(model.blocks):
        x = block(x)
        trace[f"trace.block.{i}"] = x[0]
        normed = model.norm(x)[0]
        features = tokens_to_feature_map(normed, grid)
        upsampled = F.interpolate(features[None], size=(c["image_size"],) * 2,
                                  mode="bilinear", align_corners=False)[0]
        trace[f"trace.norm.{i + 1}"] = normed
        trace[f"trace.features.{i + 1}"] = features
        trace[f"trace.upsampled.{i + 1}"] = upsampled
    full = model.forward_features(image[None])[0]
    assert torch.equal(full, trace[f"trace.norm.{c['depth']}"]), "step-by-step != forward_features"
    return trace


def vit_fixture():
    """Weights, input and trace of the tiny ViT, plus the string metadata."""
    gen = generator("vit_tiny")
    model = build_tiny_vit()
    randomise_vit(model, gen)
    image = randn(gen, 3, VIT_CONFIG["image_size"], VIT_CONFIG["image_size"])
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        trace = vit_trace(model.double(), image.double())
        report_float32_gap(model.float(), image, trace)
    tensors = {**weights, "input": image, **trace}
    metadata = {k: str(v) for k, v in VIT_CONFIG.items()}
    return tensors, metadata


def report_float32_gap(model, image, trace):
    """Print how far timm's own float32 forward is from the float64 trace."""
    out = model.forward_features(image[None])[0]
    ref = trace[f"trace.norm.{VIT_CONFIG['depth']}"]
    gap = (out.double() - ref).abs().max().item() / ref.abs().max().item()
    print(f"vit_tiny: float32 timm vs float64 trace, max abs diff / max = {gap:.2e}")


# ----------------------------------------------------------------------- kernels


def gelu_case():
    """Exact (erf) GELU on a dense [-10,10] sweep, random values, 0 and large magnitudes."""
    gen = generator("gelu")
    specials = torch.tensor([0.0, 1e-3, -1e-3, 20.0, -20.0, 50.0, -50.0, 1e3, -1e3,
                             1e4, -1e4, 1e6, -1e6, 1e30, -1e30])
    sweep = torch.linspace(-10, 10, 1501)
    noise = randn(gen, 2000 - len(specials) - len(sweep), std=4.0)
    x = torch.cat([specials, sweep, noise])
    return {"gelu.x": x, "gelu.y": F.gelu(x.double())}


def layernorm_case():
    """LayerNorm over the last dim of an offset input, with eps 1e-6 and 1e-5.

    Row standard deviations go down to 0.01, where the two eps values give
    visibly different outputs.
    """
    gen = generator("layernorm")
    row_std = torch.tensor([2.0, 1.0, 0.5, 2.0, 0.1, 0.03, 0.01])[:, None]
    x = randn(gen, 7, 33) * row_std + 3.0
    w = 1 + randn(gen, 33, std=0.3)
    b = randn(gen, 33, std=0.3)
    xd, wd, bd = x.double(), w.double(), b.double()
    return {"layernorm.x": x, "layernorm.w": w, "layernorm.b": b,
            "layernorm.y6": F.layer_norm(xd, (33,), wd, bd, eps=1e-6),
            "layernorm.y5": F.layer_norm(xd, (33,), wd, bd, eps=1e-5)}


def softmax_case():
    """Softmax over the last dim; rows 3 and 4 hold values in [50, 80]."""
    gen = generator("softmax")
    x = randn(gen, 5, 17, std=3.0)
    x[3:] = 50 + 30 * torch.rand(2, 17, generator=gen)
    return {"softmax.x": x, "softmax.y": torch.softmax(x.double(), dim=-1)}


def attention_core(qkv, heads):
    """Multi-head self-attention without projections: [N, 3D] -> [N, D]."""
    n, three_d = qkv.shape
    dim = three_d // 3
    head_dim = dim // heads
    q, k, v = (t.reshape(n, heads, head_dim).transpose(0, 1) for t in qkv.split(dim, dim=1))
    probs = torch.softmax(q @ k.transpose(1, 2) * head_dim ** -0.5, dim=-1)
    return (probs @ v).transpose(0, 1).reshape(n, dim)


def attention_case():
    """Attention core with dim 16 and 2 heads of 8 over 9 tokens."""
    gen = generator("attention")
    qkv = randn(gen, 9, 48, std=1.5)
    return {"attention.qkv": qkv, "attention.y": attention_core(qkv.double(), heads=2)}


def patchify_case():
    """Patch embedding: conv with kernel 8, stride 8, on a non-square image."""
    gen = generator("patchify")
    x = randn(gen, 3, 16, 24)
    w = randn(gen, 5, 3, 8, 8, std=0.2)
    b = randn(gen, 5, std=0.5)
    y = F.conv2d(x.double()[None], w.double(), b.double(), stride=8)[0]
    return {"patchify.x": x, "patchify.w": w, "patchify.b": b, "patchify.y": y}


def bilinear(x, size):
    """Bilinear resize of [C,H,W], align_corners=False."""
    return F.interpolate(x.double()[None], size=size, mode="bilinear", align_corners=False)[0]


def resize_cases():
    """Bilinear upsampling (non-square, and 28 -> 224) and adaptive average pooling."""
    gen = generator("resize")
    bil = randn(gen, 3, 4, 5)
    bil28 = randn(gen, 2, 28, 28)
    ada = randn(gen, 2, 8, 10)
    ada222 = randn(gen, 1, 222, 222)
    return {"bilinear.x": bil, "bilinear.y": bilinear(bil, (32, 40)),
            "bilinear28.x": bil28, "bilinear28.y": bilinear(bil28, (224, 224)),
            "adaptive.x": ada, "adaptive.y": F.adaptive_avg_pool2d(ada.double(), (10, 12)),
            "adaptive222.x": ada222,
            "adaptive222.y": F.adaptive_avg_pool2d(ada222.double(), (224, 224))}


def pooling_cases():
    """3x3 valid average pool, 5x5 and 7x7 zero-padded box filters, group max."""
    gen = generator("pooling")
    pool3 = randn(gen, 2, 10, 12)
    box5 = randn(gen, 2, 12, 13)
    box7 = randn(gen, 2, 12, 13)
    groups = randn(gen, 4, 6, 3)
    return {"avgpool3.x": pool3, "avgpool3.y": F.avg_pool2d(pool3.double(), 3, stride=1),
            "box5.x": box5,
            "box5.y": F.avg_pool2d(box5.double(), 5, stride=1, padding=2, count_include_pad=True),
            "box7.x": box7,
            "box7.y": F.avg_pool2d(box7.double(), 7, stride=1, padding=3, count_include_pad=True),
            "maxgroups.x": groups, "maxgroups.y": groups.max(dim=1).values}


def linear_case():
    """y = x w^T + b."""
    gen = generator("linear")
    x = randn(gen, 6, 10)
    w = randn(gen, 7, 10, std=0.3)
    b = randn(gen, 7, std=0.5)
    y = F.linear(x.double(), w.double(), b.double())
    return {"linear.x": x, "linear.w": w, "linear.b": b, "linear.y": y}


def kernels_fixture():
    """All kernel input/output pairs."""
    tensors = {}
    for case in (gelu_case, layernorm_case, softmax_case, attention_case, patchify_case,
                 resize_cases, pooling_cases, linear_case):
        tensors.update(case())
    return tensors


# -------------------------------------------------------------------------- main


def sort_metadata(path):
    """Rewrite the header of a safetensors file with its __metadata__ keys sorted.

    safetensors serialises the metadata from a hash map, so its key order (and
    hence the file's bytes) changes from run to run.  Sorting keeps the header
    length, so the data offsets stay valid.
    """
    raw = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length, "canonical header is longer than the original"
    raw[8:8 + length] = text.ljust(length, b" ")
    path.write_bytes(bytes(raw))


def write(path, tensors, metadata=None):
    """Save tensors as contiguous float32 safetensors and print a summary."""
    save_file({k: to_fixture(v) for k, v in tensors.items()}, str(path), metadata=metadata)
    sort_metadata(path)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(tensors)} tensors)")


def output_directory(doc):
    """The fixture scripts' command line: `--out DIR` (created), described by the first
    paragraph of the script's docstring `doc`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT})")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    return out


def main():
    out = output_directory(__doc__)
    vit_tensors, vit_metadata = vit_fixture()
    write(out / "vit_tiny.safetensors", vit_tensors, vit_metadata)
    write(out / "kernels.safetensors", kernels_fixture())


if __name__ == "__main__":
    main()
