#!/usr/bin/python3
"""Generate Tests/Fixtures/image_resize.safetensors: Pillow bicubic and PyTorch nearest resizes.

The Swift tests check cfm's model-input geometry (DESIGN.md section 3.1) against
the libraries the reference implementation uses:

* ``bicubic.<case>`` -- Pillow ``Image.resize((w, h), Image.BICUBIC)`` of an
  8-bit RGB test pattern, [h, w, 3].  Cases: ``up`` (90x150 -> 224x224),
  ``down`` (300x400 -> 224x224), and ``pad_wide`` / ``pad_tall``: the pattern
  padded to a square by edge replication (left = (side - w) // 2, the rest on the
  right; the same for top/bottom) and then resized.
* ``nearest.<in>_<out>`` -- the source index that PyTorch 1.13
  ``F.interpolate(mode="nearest")`` reads for every output index of an axis.
* ``nearest.map.input`` / ``nearest.map.output`` -- a random [13, 9, 3] float map
  resized to [20, 6, 3] (upscale rows, downscale columns).

Byte values are stored as F16 (exact for 0..255).  The test pattern is computed
from integer arithmetic only (`test_pattern`), so the Swift test regenerates the
inputs instead of storing them; keep the two definitions identical.
"""

import argparse
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures"

BICUBIC_CASES = {  # name: (height, width, pad to square first, output height, output width)
    "up": (90, 150, False, 224, 224),
    "down": (300, 400, False, 224, 224),
    "pad_wide": (45, 60, True, 56, 56),
    "pad_tall": (61, 40, True, 64, 64),
}

NEAREST_AXES = [(800, 224), (600, 224), (400, 224), (1544, 224), (1000, 224), (512, 224),
                (300, 224), (224, 224), (112, 224), (53, 224), (37, 224), (7, 3)]


def test_pattern(height, width):
    """[height, width, 3] uint8: a horizontal ramp, a hard-edged checkerboard and a hash."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    red = x * 255 // max(width - 1, 1)
    green = np.where((x // 7 + y // 5) % 2 == 0, 255, 0)
    blue = ((x * 37 + y * 91) ^ (x * y)) & 255
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def pad_to_square_edge(image):
    """Centred edge-replication padding to a square (DESIGN.md section 3.1)."""
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return np.pad(image, ((top, side - height - top), (left, side - width - left), (0, 0)), mode="edge")


def bicubic_case(height, width, pad, out_height, out_width):
    image = test_pattern(height, width)
    if pad:
        image = pad_to_square_edge(image)
    resized = Image.fromarray(image, "RGB").resize((out_width, out_height), Image.BICUBIC)
    return torch.from_numpy(np.asarray(resized).astype(np.float16))


def nearest_indices(in_size, out_size):
    """Source index of every output index: resize an index-valued row with PyTorch."""
    row = torch.arange(in_size, dtype=torch.float32).reshape(1, 1, 1, in_size)
    return F.interpolate(row, size=(1, out_size), mode="nearest").reshape(out_size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT})")
    args = parser.parse_args()
    tensors = {f"bicubic.{name}": bicubic_case(*spec) for name, spec in BICUBIC_CASES.items()}
    for in_size, out_size in NEAREST_AXES:
        tensors[f"nearest.{in_size}_{out_size}"] = nearest_indices(in_size, out_size)
    generator = torch.Generator().manual_seed(zlib.crc32(b"nearest.map"))
    cloud = torch.randn(13, 9, 3, generator=generator)
    tensors["nearest.map.input"] = cloud
    resized = F.interpolate(cloud.permute(2, 0, 1)[None], size=(20, 6), mode="nearest")
    tensors["nearest.map.output"] = resized[0].permute(1, 2, 0).contiguous()
    path = args.out / "image_resize.safetensors"
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"pillow": Image.__version__, "torch": torch.__version__})
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
