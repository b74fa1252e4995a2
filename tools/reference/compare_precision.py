#!/usr/bin/env python3
"""The cost of bf16 against fp32 for one class: two `cfm eval` output directories of the same
bundle and test split (one per precision), plus optional `cfm infer --dump` pairs.

Prints one JSON object:
  samples, threshold, verdict_agreement (fraction of samples with the same pass/reject at the
  bundle's threshold), disagreements (keys), max_score_rel_error (|Δscore| / fp32 score, worst
  sample), max_map_rel_error (max |Δmap| / max |map_fp32|, worst sample), and from the dumps
  max_feature_rel_error per tensor (max |Δ| / max |fp32|, worst frame).

Only numpy: maps are the float32 TIFFs `cfm eval` writes (uncompressed strips), dumps are
safetensors.
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np


def read_tiff_float32(path):
    """A single-channel float32 TIFF without compression (what `cfm eval` writes for maps)."""
    data = Path(path).read_bytes()
    endian = {b"II": "<", b"MM": ">"}[data[:2]]
    (offset,) = struct.unpack(endian + "I", data[4:8])
    (count,) = struct.unpack(endian + "H", data[offset:offset + 2])
    tags = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack(endian + "HHII", data[offset + 2 + 12 * i: offset + 14 + 12 * i])
        size = {3: 2, 4: 4}[kind] if kind in (3, 4) else 0
        if kind == 3 and n == 1:
            value &= 0xFFFF if endian == "<" else 0xFFFFFFFF
            if endian == ">":
                value >>= 16
        if n > 1 and size:
            fmt = endian + ("H" if kind == 3 else "I") * n
            value = list(struct.unpack(fmt, data[value:value + size * n]))
        tags[tag] = value
    width, height = tags[256], tags[257]
    if tags.get(259, 1) != 1 or tags.get(258, 32) != 32 or tags.get(339, 3) != 3 or tags.get(277, 1) != 1:
        sys.exit(f"{path}: not an uncompressed single-channel float32 TIFF")
    offsets, counts = tags[273], tags[279]
    offsets = offsets if isinstance(offsets, list) else [offsets]
    counts = counts if isinstance(counts, list) else [counts]
    raw = b"".join(data[o:o + c] for o, c in zip(offsets, counts))
    return np.frombuffer(raw, dtype=endian + "f4").reshape(height, width)


def read_safetensors(path):
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        assert entry["dtype"] == "F32"
        out[name] = np.frombuffer(data[8 + n + start: 8 + n + end], dtype="<f4").reshape(entry["shape"])
    return out


def relative(a, b):
    scale = float(np.max(np.abs(a)))
    return float(np.max(np.abs(a - b))) / scale if scale > 0 else float(np.max(np.abs(a - b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", required=True, help="cfm eval output at fp32")
    parser.add_argument("--bf16", required=True, help="cfm eval output at bf16")
    parser.add_argument("--threshold", type=float, required=True, help="the bundle's calibrated threshold")
    parser.add_argument("--dumps", nargs="*", default=[], help="pairs FP32_DIR:BF16_DIR of cfm infer --dump outputs")
    args = parser.parse_args()

    fp32 = json.loads((Path(args.fp32) / "scores.json").read_text())
    bf16 = json.loads((Path(args.bf16) / "scores.json").read_text())
    assert fp32.keys() == bf16.keys(), "the two runs scored different samples"
    disagreements = sorted(k for k in fp32 if (fp32[k] > args.threshold) != (bf16[k] > args.threshold))
    score_error = max(abs(bf16[k] - fp32[k]) / abs(fp32[k]) for k in fp32 if fp32[k] != 0)
    map_error, worst_map = 0.0, None
    for key in fp32:
        a = read_tiff_float32(Path(args.fp32) / "maps" / f"{key}.tiff")
        b = read_tiff_float32(Path(args.bf16) / "maps" / f"{key}.tiff")
        e = relative(a, b)
        if e > map_error:
            map_error, worst_map = e, key
    features = {}
    for pair in args.dumps:
        a_dir, b_dir = pair.split(":")
        a, b = read_safetensors(Path(a_dir) / "features.safetensors"), read_safetensors(Path(b_dir) / "features.safetensors")
        for name in ("rgb_features", "xyz_features", "psi2d", "psi3d", "anomaly_map", "score"):
            features[name] = max(features.get(name, 0.0), relative(a[name], b[name]))
    print(json.dumps({
        "samples": len(fp32), "threshold": args.threshold,
        "verdict_agreement": 1 - len(disagreements) / len(fp32), "disagreements": disagreements,
        "max_score_rel_error": score_error, "max_map_rel_error": map_error, "worst_map": worst_map,
        "max_feature_rel_error": features,
    }, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
