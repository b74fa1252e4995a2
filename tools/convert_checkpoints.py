#!/usr/bin/python3
"""Convert official PyTorch checkpoints to the safetensors files cfm loads.

Kinds (docs/architecture.md lists the key names and shapes of each):

  vit       DINO ViT-B/8: the DINO authors' dino_vitbase8_pretrain.pth (or a
            full DINO checkpoint, whose `teacher` is used) or a timm state dict
            of vit_base_patch8_224.dino (.pth or .safetensors)  -> vit.safetensors
  pointmae  Point-MAE encoder: the Point-MAE authors' pretrain.pth
            (`base_model`, keys prefixed `module.MAE_encoder.`) -> pointmae.safetensors
  mapper    a CFM feature mapper (MLP with `input`, `projection`, `output`
            Linear layers) -> mapper_2d_to_3d / mapper_3d_to_2d.safetensors
  auto      detect the kind from the keys (default)

Wrappers (`teacher`, `student`, `base_model`, `model`, `state_dict`) and key
prefixes (`module.`, `backbone.`, `MAE_encoder.`) are removed.  Keys the
architecture does not use (classifier and DINO heads, the Point-MAE decoder,
mask tokens, BatchNorm's num_batches_tracked, ...) are dropped; every kept
tensor is checked against the expected shape and written as contiguous
float32.  Any missing or misshaped key aborts with a one-line message.

Examples:
  tools/convert_checkpoints.py dino_vitbase8_pretrain.pth --out weights/vit.safetensors
  tools/convert_checkpoints.py pretrain.pth --kind pointmae --out weights/pointmae.safetensors
  tools/convert_checkpoints.py CFM_2Dto3D_bagel.pth --out model/mapper_2d_to_3d.safetensors
"""

import argparse
import io
import pickle
import re
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WRAPPERS = ("teacher", "base_model", "model", "state_dict", "student")
PREFIXES = ("module.", "backbone.", "MAE_encoder.")
BLOCK_KEY = re.compile(r"^(blocks\.)+\d+\.")
SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("argparse", "Namespace"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
}

VIT_DIM, VIT_DEPTH, VIT_TOKENS = 768, 12, 785
PM_DIM, PM_DEPTH = 384, 12
MAPPER_DIMS = {(768, 384), (384, 768), (768, 1152), (1152, 768)}


class ConversionError(Exception):
    """A checkpoint that does not fit the expected architecture."""


# ------------------------------------------------------------ expected layouts


def transformer_block_shapes(prefix, dim, qkv_bias):
    """Key -> shape of one pre-norm transformer block (MLP ratio 4)."""
    shapes = {
        "norm1.weight": (dim,), "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.proj.weight": (dim, dim), "attn.proj.bias": (dim,),
        "norm2.weight": (dim,), "norm2.bias": (dim,),
        "mlp.fc1.weight": (4 * dim, dim), "mlp.fc1.bias": (4 * dim,),
        "mlp.fc2.weight": (dim, 4 * dim), "mlp.fc2.bias": (dim,),
    }
    if qkv_bias:
        shapes["attn.qkv.bias"] = (3 * dim,)
    return {prefix + k: v for k, v in shapes.items()}


def vit_shapes():
    """DINO ViT-B/8 (timm vit_base_patch8_224.dino key names), 12 blocks."""
    shapes = {
        "cls_token": (1, 1, VIT_DIM), "pos_embed": (1, VIT_TOKENS, VIT_DIM),
        "patch_embed.proj.weight": (VIT_DIM, 3, 8, 8), "patch_embed.proj.bias": (VIT_DIM,),
        "norm.weight": (VIT_DIM,), "norm.bias": (VIT_DIM,),
    }
    for i in range(VIT_DEPTH):
        shapes.update(transformer_block_shapes(f"blocks.{i}.", VIT_DIM, qkv_bias=True))
    return shapes


def conv_bn_shapes(prefix, c_in, c_mid, c_out):
    """Conv1d(c_in->c_mid) -> BatchNorm1d(c_mid) -> ReLU -> Conv1d(c_mid->c_out)."""
    return {
        prefix + "0.weight": (c_mid, c_in, 1), prefix + "0.bias": (c_mid,),
        prefix + "1.weight": (c_mid,), prefix + "1.bias": (c_mid,),
        prefix + "1.running_mean": (c_mid,), prefix + "1.running_var": (c_mid,),
        prefix + "3.weight": (c_out, c_mid, 1), prefix + "3.bias": (c_out,),
    }


def pointmae_shapes():
    """Point-MAE encoder (authors' names minus `module.MAE_encoder.`): mini-PointNet + 12 blocks of 384."""
    shapes = {
        **conv_bn_shapes("encoder.first_conv.", 3, 128, 256),
        **conv_bn_shapes("encoder.second_conv.", 512, 512, PM_DIM),
        "pos_embed.0.weight": (128, 3), "pos_embed.0.bias": (128,),
        "pos_embed.2.weight": (PM_DIM, 128), "pos_embed.2.bias": (PM_DIM,),
        "norm.weight": (PM_DIM,), "norm.bias": (PM_DIM,),
    }
    for i in range(PM_DEPTH):
        shapes.update(transformer_block_shapes(f"blocks.blocks.{i}.", PM_DIM, qkv_bias=False))
    return shapes


def mapper_shapes(state):
    """CFM mapper MLP(in, out) with hidden (in+out)//2; dims read from `output`/`input`."""
    for key in ("input.weight", "output.weight"):
        if key not in state or state[key].dim() != 2:
            raise ConversionError(f"missing or non-matrix key {key}")
    d_in, d_out = state["input.weight"].shape[1], state["output.weight"].shape[0]
    if (d_in, d_out) not in MAPPER_DIMS:
        raise ConversionError(f"mapper {d_in}->{d_out} is not one of "
                              + ", ".join(f"{a}->{b}" for a, b in sorted(MAPPER_DIMS)))
    h = (d_in + d_out) // 2
    return {"input.weight": (h, d_in), "input.bias": (h,),
            "projection.weight": (h, h), "projection.bias": (h,),
            "output.weight": (d_out, h), "output.bias": (d_out,)}


# ----------------------------------------------------------------- processing


class Placeholder:
    """Stands in for every object while a pickle is audited; builds nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class GlobalsAudit(pickle.Unpickler):
    """Walks a pickle and raises on any global outside SAFE_GLOBALS."""

    def find_class(self, module, name):
        storage = module == "torch" and name.endswith("Storage")
        if not storage and (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return Placeholder

    def persistent_load(self, pid):
        return None


def audit_pickle(path):
    """Raise ConversionError unless the torch checkpoint only pickles safe globals.

    (PyTorch 1.13's `weights_only` loader rejects floats, which every training
    checkpoint holds, and its torch.load ignores a custom `pickle_module`; so
    the pickle is audited first and then loaded normally.)
    """
    if not zipfile.is_zipfile(path):
        raise ConversionError(f"{path}: not a zip-format torch checkpoint (PyTorch < 1.6?); "
                              "re-run with --trust-pickle if you trust its source")
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n.split("/")[-1] == "data.pkl"), None)
        if name is None:
            raise ConversionError(f"{path}: no data.pkl in the checkpoint archive")
        try:
            GlobalsAudit(io.BytesIO(archive.read(name))).load()
        except pickle.UnpicklingError as error:
            raise ConversionError(f"{path}: {error}; re-run with --trust-pickle "
                                  "if you trust its source") from None


def load_checkpoint(path, trust_pickle):
    """Load a .safetensors file or a torch checkpoint (audited unless trust_pickle)."""
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    if path.suffix != ".safetensors" and not trust_pickle:
        audit_pickle(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return torch.load(str(path), map_location="cpu")
    except Exception as error:  # corrupt files raise many different types
        raise ConversionError(f"{path}: cannot read checkpoint ({error})") from None


def is_state_dict(obj):
    """True for a non-empty mapping whose values are all tensors."""
    return isinstance(obj, dict) and bool(obj) and all(torch.is_tensor(v) for v in obj.values())


def unwrap(obj):
    """Descend through training-checkpoint wrappers down to the state dict."""
    while not is_state_dict(obj):
        if not isinstance(obj, dict):
            raise ConversionError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise ConversionError("no state dict found (top-level keys: "
                                  + ", ".join(sorted(map(str, obj))[:8]) + ")")
        obj = inner
    return obj


def strip_prefixes(state):
    """Remove wrapper prefixes (`module.`, `backbone.`, `MAE_encoder.`) from every key."""
    out = {}
    for original, value in state.items():
        key, stripped = original, True
        while stripped:
            stripped = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        if key in out:
            raise ConversionError(f"key {original} collides with another key after "
                                  "removing prefixes")
        out[key] = value
    return out


def detect_kind(state):
    """Guess the checkpoint kind from its (unwrapped, unprefixed) keys."""
    if "patch_embed.proj.weight" in state:
        return "vit"
    if "encoder.first_conv.0.weight" in state:
        return "pointmae"
    if "projection.weight" in state:
        return "mapper"
    raise ConversionError("cannot detect the checkpoint kind; pass --kind")


def expected_shapes(kind, state):
    """Key -> shape of the architecture of `kind`."""
    if kind == "vit":
        return vit_shapes()
    if kind == "pointmae":
        return pointmae_shapes()
    return mapper_shapes(state)


def check_shapes(state, shapes):
    """Raise on the first expected key that is missing or has the wrong shape."""
    for key, shape in shapes.items():
        if key not in state:
            raise ConversionError(f"missing key {key} (expected shape {list(shape)})")
        if tuple(state[key].shape) != shape:
            raise ConversionError(f"key {key} has shape {list(state[key].shape)}, "
                                  f"expected {list(shape)}")


def check_unused(unused, shapes):
    """Raise if an unused key belongs to a kept module or to an extra block.

    Such a key (say `blocks.0.attn.qkv.bias` where no bias is expected, a layer
    scale `blocks.0.ls1.gamma`, or `blocks.12.*`) means the architecture
    differs; dropping it silently would change the results.
    """
    modules = {key.rsplit(".", 1)[0] for key in shapes}
    for key in unused:
        if key.endswith(".num_batches_tracked"):
            continue
        if key.rsplit(".", 1)[0] in modules or BLOCK_KEY.match(key):
            raise ConversionError(f"unexpected key {key} (not part of the expected architecture)")


def select(state, shapes):
    """Keep exactly the expected keys as float32; return (tensors, dropped keys)."""
    check_shapes(state, shapes)
    dropped = sorted(set(state) - set(shapes))
    check_unused(dropped, shapes)
    kept = {k: state[k].detach().to(torch.float32).contiguous() for k in shapes}
    return kept, dropped


def mapper_direction(tensors, out):
    """'2d_to_3d' or '3d_to_2d'; raise if the output file name says the opposite."""
    direction = "2d_to_3d" if tensors["input.weight"].shape[1] == VIT_DIM else "3d_to_2d"
    opposite = "3d_to_2d" if direction == "2d_to_3d" else "2d_to_3d"
    if opposite in Path(out).name:
        raise ConversionError(f"this is a {direction} mapper but the output is named {Path(out).name}")
    return direction


def convert(source, out, kind="auto", trust_pickle=False):
    """Convert checkpoint `source` to safetensors `out`; return (description, kept, dropped)."""
    state = strip_prefixes(unwrap(load_checkpoint(Path(source), trust_pickle)))
    if kind == "auto":
        kind = detect_kind(state)
    tensors, dropped = select(state, expected_shapes(kind, state))
    metadata = {"format": "cfm", "kind": kind, "source": Path(source).name}
    if kind == "mapper":
        metadata["direction"] = mapper_direction(tensors, out)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=metadata)
    description = " ".join(metadata[k] for k in ("kind", "direction") if k in metadata)
    return description, tensors, dropped


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="input checkpoint (.pth, .pt or .safetensors)")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors path")
    parser.add_argument("--kind", choices=("auto", "vit", "pointmae", "mapper"), default="auto",
                        help="checkpoint kind (default: auto)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="load the pickle without auditing it first (by default a "
                             "checkpoint may only hold tensors, containers, numbers, strings, "
                             "argparse namespaces and numpy arrays); only for trusted files")
    args = parser.parse_args(argv)
    try:
        what, tensors, dropped = convert(args.checkpoint, args.out, args.kind, args.trust_pickle)
    except (ConversionError, OSError) as error:
        print(f"convert_checkpoints: {error}", file=sys.stderr)
        return 1
    print(f"{args.out}: {what}, {len(tensors)} tensors kept, {len(dropped)} dropped"
          + (f" ({', '.join(dropped[:6])}{', ...' if len(dropped) > 6 else ''})" if dropped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
