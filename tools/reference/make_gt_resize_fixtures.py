#!/usr/bin/python3
"""Generate the ground-truth resampling fixtures of the official evaluation protocol.

The official protocol brings a test image's ground-truth mask onto the 224x224 map grid
by padding it to a centred square with edge replication (left = (side - w) // 2
columns, the rest on the right; top = (side - h) // 2 rows, the rest at the bottom),
resizing it with Pillow's ``Image.resize(size, Image.NEAREST)`` and calling a pixel
anomalous where value / 255 > 0.5.  This script computes that with NumPy (``np.pad``,
mode ``edge``) and Pillow 9.4 -- independently of the Swift code -- and writes:

* ``Tests/Fixtures/gt_resize.safetensors``: ``pillow_nearest.<in>_<out>`` (F32) -- the
  source index Pillow's NEAREST reads for every output index of one axis, recovered by
  resizing a one-row 32-bit image holding 0, 1, ..., in - 1.
* ``Tests/Fixtures/gt_resize/<w>x<h>_<out>.png``: the official mask (0 / 255) of the
  test pattern ``gt_pattern(h, w)`` for each case of ``MASK_CASES``.

The test pattern is integer arithmetic only, so the Swift test
(``Tests/CFMDataTests/GroundTruthResamplingTests.swift``) regenerates the inputs instead
of storing them; keep the two definitions identical.  Deterministic: re-running
reproduces every file byte for byte.

Run with Debian's interpreter: ``/usr/bin/python3 tools/reference/make_gt_resize_fixtures.py``.
"""

import argparse
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures"

# (width, height, output side): square, wide, tall-and-tiny, and upsampling a 5x3 mask to 7x7.
MASK_CASES = [(800, 800, 224), (811, 601, 224), (601, 811, 224), (37, 53, 224), (5, 3, 7)]
# Axes (in, out): the mask cases' square sides, MVTec 3D-AD and Eyecandies sizes, exact
# half-pixel positions (448 -> 224, 2 -> 3, 4 -> 6), upsampling and identity.
AXES = [(800, 224), (811, 224), (53, 224), (5, 7), (400, 224), (512, 224), (1544, 224),
        (448, 224), (224, 224), (112, 224), (2, 3), (4, 6), (7, 3), (300, 224), (601, 224)]


def gt_pattern(height, width):
    """[height, width] uint8: XOR of a column and a row bit hash (0 / 255), with columns
    x % 37 == 5 set to 127 and rows y % 41 == 9 set to 128 (either side of the threshold)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    bits = ((((x * 2654435761) % 2**32) >> 13) ^ (((y * 40503) % 2**16) >> 5)) & 1
    value = np.where(bits == 1, 255, 0)
    value = np.where(x % 37 == 5, 127, value)
    value = np.where(y % 41 == 9, 128, value)
    return value.astype(np.uint8)


def official_mask(mask, size):
    """The official protocol: edge-replicated centred square, Pillow NEAREST, value/255 > 0.5."""
    height, width = mask.shape
    side = max(height, width)
    left, top = (side - width) // 2, (side - height) // 2
    square = np.pad(mask, ((top, side - height - top), (left, side - width - left)), mode="edge")
    resized = np.asarray(Image.fromarray(square, mode="L").resize((size, size), Image.NEAREST))
    return np.where(resized.astype(np.float64) / 255 > 0.5, 255, 0).astype(np.uint8)


def pillow_nearest_indices(in_size, out_size):
    """The source index Pillow's NEAREST reads for each output index of one axis."""
    ramp = Image.fromarray(np.arange(in_size, dtype=np.int32)[None, :], mode="I")
    return np.asarray(ramp.resize((out_size, 1), Image.NEAREST))[0].astype(np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    assert PIL.__version__.startswith("9."), f"Pillow {PIL.__version__}: the fixtures are made with Pillow 9"
    tensors = {}
    for in_size, out_size in AXES:
        indices = pillow_nearest_indices(in_size, out_size)
        assert indices.min() >= 0 and indices.max() < in_size
        tensors[f"pillow_nearest.{in_size}_{out_size}"] = torch.from_numpy(indices.astype(np.float32))
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "gt_resize.safetensors"), metadata={"pillow": PIL.__version__})
    masks = args.out / "gt_resize"
    masks.mkdir(exist_ok=True)
    for width, height, size in MASK_CASES:
        Image.fromarray(official_mask(gt_pattern(height, width), size), mode="L").save(masks / f"{width}x{height}_{size}.png")
    print(f"wrote {args.out / 'gt_resize.safetensors'} and {len(MASK_CASES)} masks in {masks}")


if __name__ == "__main__":
    main()
