#!/usr/bin/python3
"""Generate the image fixtures: Pillow/PyTorch resizes and PNG/TIFF files written by others.

``Tests/Fixtures/image_resize.safetensors`` checks cfm's model-input geometry
(square padding, bicubic and nearest resizing) against the libraries the reference
implementation uses:

* ``bicubic.<case>`` -- Pillow ``Image.resize((w, h), Image.BICUBIC)`` of an
  8-bit RGB test pattern, [h, w, 3].  Cases: ``up`` (90x150 -> 224x224),
  ``down`` (300x400 -> 224x224), and ``pad_wide`` / ``pad_tall``: the pattern
  padded to a square by edge replication (left = (side - w) // 2, the rest on the
  right; the same for top/bottom) and then resized.
* ``nearest.<in>_<out>`` -- the source index that PyTorch 1.13
  ``F.interpolate(mode="nearest")`` reads for every output index of an axis.
* ``nearest.map.input`` / ``nearest.map.output`` -- a random [13, 9, 3] float map
  resized to [20, 6, 3] (upscale rows, downscale columns).

``Tests/Fixtures/image_files/`` holds small PNGs of every colour type and bit
depth (written by Pillow, or by hand where Pillow cannot write the format) and
float32 TIFFs written by Pillow or by hand (a big-endian point cloud with deflate
and the floating-point predictor); ``image_files.safetensors`` holds what they
contain: ``<name>.rgb`` = Pillow's ``convert("RGB")``, ``<name>.l`` =
``convert("L")`` for the PNGs, ``<name>.map`` / ``<name>.cloud`` for the TIFFs.

Byte values are stored as F16 (exact for 0..255).  The test pattern is computed
from integer arithmetic only (`test_pattern`), so the Swift test regenerates the
inputs instead of storing them; keep the two definitions identical.
"""

import argparse
import struct
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

# 480, 608 and 62 are sizes where PyTorch's float32 index differs from the exact floor(dst*in/out).
NEAREST_AXES = [(800, 224), (600, 224), (400, 224), (1544, 224), (1000, 224), (512, 224),
                (300, 224), (224, 224), (112, 224), (53, 224), (37, 224), (7, 3), (480, 224), (608, 224), (62, 224)]


def test_pattern(height, width):
    """[height, width, 3] uint8: a horizontal ramp, a hard-edged checkerboard and a hash."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    red = x * 255 // max(width - 1, 1)
    green = np.where((x // 7 + y // 5) % 2 == 0, 255, 0)
    blue = ((x * 37 + y * 91) ^ (x * y)) & 255
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def pad_to_square_edge(image):
    """Centred edge-replication padding to a square: left = (side - w) // 2, top likewise."""
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


def raw_png(path, width, height, color_type, bit_depth, samples):
    """Write a PNG by hand (for layouts Pillow cannot write): samples is [height, width, c] uint16."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
                     + chunk(b"IEND", b""))


def big_endian_predictor_tiff(path, values, rows_per_strip=2):
    """Write float32 values [h, w, c] as a big-endian TIFF with deflate and the floating-point
    predictor (TIFF Technical Note 3), by hand: libtiff 4.5 writes this combination byte-swapped."""
    height, width, channels = values.shape
    strips = []
    for top in range(0, height, rows_per_strip):
        data = bytearray()
        for row in values[top:top + rows_per_strip]:
            raw = row.astype(">f4").tobytes()  # w*c big-endian floats
            count = width * channels
            planes = bytearray(raw[4 * k + byte] for byte in range(4) for k in range(count))
            for i in range(len(planes) - 1, channels - 1, -1):  # horizontal differencing, stride = channels
                planes[i] = (planes[i] - planes[i - channels]) & 255
            data += planes
        strips.append(zlib.compress(bytes(data)))
    entries = [(256, 3, [width]), (257, 3, [height]), (258, 3, [32] * channels), (259, 3, [8]),
               (262, 3, [2 if channels == 3 else 1]), (273, 4, None), (277, 3, [channels]), (278, 3, [rows_per_strip]),
               (279, 4, [len(s) for s in strips]), (284, 3, [1]), (317, 3, [3]), (339, 3, [3] * channels)]
    ifd_size = 2 + 12 * len(entries) + 4
    arrays_at = 8 + ifd_size
    arrays, payload, offsets = bytearray(), bytearray(), []
    data_at = arrays_at + 4 * len(strips) * 2 + 2 * 2 * channels
    for s in strips:
        offsets.append(data_at + len(payload))
        payload += s
    entries[5] = (273, 4, offsets)
    ifd = struct.pack(">H", len(entries))
    for tag, kind, items in entries:
        size = 2 if kind == 3 else 4
        packed = b"".join(struct.pack(">H" if kind == 3 else ">I", v) for v in items)
        if len(packed) <= 4:
            ifd += struct.pack(">HHI", tag, kind, len(items)) + packed.ljust(4, b"\0")
        else:
            ifd += struct.pack(">HHII", tag, kind, len(items), arrays_at + len(arrays))
            arrays += packed
    ifd += struct.pack(">I", 0)
    body = b"MM\0\x2a" + struct.pack(">I", 8) + ifd + arrays
    assert len(body) <= data_at
    path.write_bytes(body.ljust(data_at, b"\0") + payload)


def image_files(directory):
    """Write PNGs and TIFFs of the layouts cfm must read; return what Pillow reads from them."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    height, width = 3, 5
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
    pngs = {
        "grey8": Image.fromarray(rgb[..., 0], "L"),
        "grey_alpha8": Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA"),
        "rgb8": Image.fromarray(rgb, "RGB"),
        "rgba8": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "palette": Image.fromarray(rgb, "RGB").quantize(colors=6),
        "bilevel": Image.fromarray(rgb[..., 0] > 127),
        "grey16": Image.fromarray(rng.integers(0, 600, (height, width)).astype(np.uint16)),
    }
    transparent = Image.fromarray(rgb, "RGB").quantize(colors=6)
    transparent.info["transparency"] = 2
    pngs["palette_transparent"] = transparent
    for name, image in pngs.items():
        image.save(directory / f"{name}.png", transparency=image.info.get("transparency"))
    wide = rng.integers(0, 65536, (height, width, 4)).astype(np.uint16)
    wide[..., 3] = 65535  # opaque: libpng's simplified API premultiplies 16-bit colour by alpha
    raw_png(directory / "rgb16.png", width, height, 2, 16, wide[..., :3])
    raw_png(directory / "rgba16.png", width, height, 6, 16, wide)
    raw_png(directory / "grey_alpha16.png", width, height, 4, 16, wide[..., [0, 3]])
    expected = {}
    for path in sorted(directory.glob("*.png")):
        with Image.open(path) as image:
            expected[f"{path.stem}.rgb"] = torch.from_numpy(np.asarray(image.convert("RGB")).astype(np.float16))
            expected[f"{path.stem}.l"] = torch.from_numpy(np.asarray(image.convert("L")).astype(np.float16))
    field = rng.normal(size=(7, 6)).astype(np.float32)
    Image.fromarray(field, "F").save(directory / "map_pillow.tiff")
    Image.fromarray(field, "F").save(directory / "map_pillow_lzw.tiff", compression="tiff_lzw")
    Image.fromarray(rgb, "RGB").save(directory / "rgb8.tiff")
    cloud = rng.normal(size=(5, 4, 3)).astype(np.float32)
    big_endian_predictor_tiff(directory / "cloud_big_endian_predictor.tiff", cloud)
    expected["cloud_big_endian_predictor.cloud"] = torch.from_numpy(cloud)
    for name in ["map_pillow", "map_pillow_lzw"]:
        with Image.open(directory / f"{name}.tiff") as image:
            expected[f"{name}.map"] = torch.from_numpy(np.asarray(image).copy())
    return expected


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
    files = image_files(args.out / "image_files")
    path = args.out / "image_files.safetensors"
    save_file(files, str(path), metadata={"pillow": Image.__version__})
    print(f"wrote {path} and {len(list((args.out / 'image_files').iterdir()))} files in image_files/")


if __name__ == "__main__":
    main()
