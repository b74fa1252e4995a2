#!/usr/bin/env python3
"""P-AUROC and AUPRO of the same anomaly maps under both ground-truth resamplings.

Reads the maps ``cfm eval`` wrote (``OUT/maps/<defect>/<id>.tiff``, 224x224 float32) and
the class's ground-truth masks (``DATA/CLASS/test/<defect>/gt/<id>.png``), brings each
mask onto the map grid twice and prints the pixel metrics for each:

* ``official``: centred square by edge replication, Pillow NEAREST, value / 255 > 0.5;
* ``point-cloud``: centred zero padding, PyTorch nearest (floor(dst * in / out)), non-zero.

Metrics as docs/evaluation.md defines them: P-AUROC (scikit-learn) of every map divided by
sqrt(its mean); AUPRO, exact curve over every distinct value of the maps divided by the mean
of their non-zero values, 8-connected regions (SciPy), at FPR limits 30 %, 10 %, 5 %, 1 %.
Independent of the Swift code (NumPy, SciPy, scikit-learn, Pillow, tifffile in a venv):

    /work/venv-open3d/bin/python tools/reference/gt_protocol_effect.py --data DATA/CLASS --eval OUT
"""

import argparse
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage
from sklearn.metrics import roc_auc_score

LIMITS = [0.3, 0.1, 0.05, 0.01]


def official(mask, size):
    h, w = mask.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = np.pad(mask, ((top, side - h - top), (left, side - w - left)), mode="edge")
    return np.asarray(Image.fromarray(square).resize((size, size), Image.NEAREST)).astype(np.float64) / 255 > 0.5


def point_cloud(mask, size):
    h, w = mask.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = np.zeros((side, side), dtype=mask.dtype)
    square[top:top + h, left:left + w] = mask
    index = np.minimum(np.floor(np.arange(size, dtype=np.float32) * np.float32(side / size)).astype(int), side - 1)
    return square[np.ix_(index, index)] != 0


def aupro_exact(maps, masks):
    """Areas under the exact PRO curve up to each limit, normalised by the limit."""
    scores, fpr_step, pro_step = [], [], []
    labelled = [ndimage.label(m, structure=np.ones((3, 3)))[0] for m in masks]
    regions = sum(int(l.max()) for l in labelled)
    negatives = sum(int((~m).sum()) for m in masks)
    for values, labels in zip(maps, labelled):
        sizes = np.bincount(labels.ravel())
        scores.append(values.ravel())
        fpr_step.append(np.where(labels.ravel() == 0, 1.0 / negatives, 0.0))
        pro_step.append(np.where(labels.ravel() > 0, 1.0 / (sizes[labels.ravel()] * regions), 0.0))
    scores, fpr_step, pro_step = map(np.concatenate, (scores, fpr_step, pro_step))
    order = np.argsort(-scores, kind="stable")
    scores, fpr, pro = scores[order], np.cumsum(fpr_step[order]), np.cumsum(pro_step[order])
    last = np.append(scores[1:] != scores[:-1], True)
    fpr, pro = np.concatenate([[0], fpr[last], [1]]), np.concatenate([[0], pro[last], [1]])
    areas = []
    for limit in LIMITS:
        keep = fpr <= limit
        x, y = fpr[keep], pro[keep]
        x, y = np.append(x, limit), np.append(y, np.interp(limit, fpr, pro))
        areas.append(np.trapezoid(y, x) / limit)
    return areas


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="DATA/CLASS")
    parser.add_argument("--eval", type=Path, required=True, help="the cfm eval output directory")
    args = parser.parse_args()
    maps, gts = [], []
    for tiff in sorted((args.eval / "maps").glob("*/*.tiff")):
        defect, stem = tiff.parent.name, tiff.stem
        maps.append(tifffile.imread(tiff).astype(np.float64).reshape(224, 224))
        gt = args.data / "test" / defect / "gt" / f"{stem}.png"
        gts.append(np.asarray(Image.open(gt).convert("L")) if gt.exists() else None)
    pixel = [m / np.sqrt(m.mean()) if m.mean() > 0 else m for m in maps]
    region = [m / m[m != 0].mean() if (m != 0).any() else m for m in maps]
    for name, resample in [("official", official), ("point-cloud", point_cloud)]:
        masks = [resample(g, 224) if g is not None else np.zeros((224, 224), bool) for g in gts]
        p_auroc = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([p.ravel() for p in pixel]))
        aupro = aupro_exact(region, masks)
        print(f"{name:12s} {len(maps)} maps, {sum(int(m.sum()) for m in masks)} anomalous pixels: P-AUROC {p_auroc:.4f} "
              + " ".join(f"AUPRO@{int(l * 100)}% {a:.4f}" for l, a in zip(LIMITS, aupro)))


if __name__ == "__main__":
    main()
