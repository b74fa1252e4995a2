#!/usr/bin/python3
"""Generate ``Tests/Fixtures/metrics.safetensors``: reference values of the MVTec 3D-AD metrics.

The Swift metrics (``Sources/CFMData/Metrics``) are checked against independent
references computed here:

* I-AUROC and P-AUROC: scikit-learn's ``roc_auc_score`` (Debian ``python3-sklearn``).
* 8-connected ground-truth regions: SciPy's ``ndimage.label`` with a 3x3 structure.
* AUPRO, exact curve: the MVTec 3D-AD evaluation protocol written out in NumPy -- per
  pixel an FPR increment of 1/(anomaly-free pixels) and a PRO increment of
  1/(region size * regions), a stable descending sort of all pixels, cumulative sums
  kept at the last pixel of every distinct score, the curve framed by (0, 0) and (1, 1),
  integrated by the trapezoid rule up to the FPR limit (linear interpolation there) and
  divided by the limit.
* AUPRO, sampled curve: the CFM authors' evaluation (``num_thresholds=99``) -- thresholds
  at ``np.linspace(0, N - 1, n).astype(int)`` of the sorted anomaly-free scores, FPR =
  1 - (position + 1) / N, overlap = fraction of a region scoring above the threshold,
  plus the point (1, 1).

Tensors (all F32, maps and masks [images, height, width]):

* ``image.<case>.scores`` / ``image.<case>.labels`` -- image-level cases; metadata
  ``image.<case>.auroc``.
* ``pixel.<case>.maps`` / ``pixel.<case>.masks`` -- pixel-level cases; metadata
  ``pixel.<case>.auroc``, ``pixel.<case>.regions``, ``pixel.<case>.aupro.exact.<limit>``
  and ``pixel.<case>.aupro.sampled99.<limit>`` for limits 0.3, 0.1, 0.05, 0.01.

Expected values are stored in the metadata as ``repr`` of Python floats (exact doubles).
Run with Debian's interpreter: ``/usr/bin/python3 tools/reference/make_metric_fixtures.py``.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from scipy import ndimage
from sklearn.metrics import roc_auc_score

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures"
LIMITS = [0.3, 0.1, 0.05, 0.01]
STRUCTURE = np.ones((3, 3), dtype=int)


def regions(masks):
    """Per image: (labels, count) of the 8-connected components."""
    return [ndimage.label(m, structure=STRUCTURE) for m in masks]


def pro_curve_exact(maps, masks):
    labelled = regions(masks)
    total_regions = sum(n for _, n in labelled)
    ok_pixels = sum(int((lab == 0).sum()) for lab, _ in labelled)
    fp_step = np.zeros(maps.shape, dtype=np.float64)
    pro_step = np.zeros(maps.shape, dtype=np.float64)
    for i, (lab, n) in enumerate(labelled):
        fp_step[i][lab == 0] = 1.0 / ok_pixels
        for k in range(1, n + 1):
            region = lab == k
            pro_step[i][region] = 1.0 / (region.sum() * total_regions)
    scores = maps.ravel()
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fpr = np.cumsum(fp_step.ravel()[order])
    pro = np.cumsum(pro_step.ravel()[order])
    keep = np.append(np.diff(s) != 0, True)
    fpr = np.minimum(fpr[keep], 1.0)
    pro = np.minimum(pro[keep], 1.0)
    return np.concatenate(([0.0], fpr, [1.0])), np.concatenate(([0.0], pro, [1.0]))


def pro_curve_sampled(maps, masks, thresholds):
    labelled = regions(masks)
    ok_scores = np.sort(np.concatenate([m[lab == 0] for m, (lab, _) in zip(maps, labelled)]))
    components = [m[lab == k] for m, (lab, n) in zip(maps, labelled) for k in range(1, n + 1)]
    n_ok = len(ok_scores)
    fprs, pros = [1.0], [1.0]
    for position in np.linspace(0, n_ok - 1, num=thresholds).astype(int):
        t = ok_scores[position]
        fprs.append(1.0 - (position + 1) / n_ok)
        pros.append(sum(float((c > t).mean()) for c in components) / len(components))
    return np.array(fprs[::-1]), np.array(pros[::-1])


def check_exact_curve(maps, masks, fpr, pro, rng, points=200):
    """Cross-checks the cumulative-sum curve against the definition, threshold by threshold:
    at each distinct score t (pixels >= t called anomalous) FPR and the mean region overlap."""
    labelled = regions(masks)
    ok = np.concatenate([(lab == 0).ravel() for lab, _ in labelled])
    scores = maps.ravel()
    comps = [(i, lab == k) for i, (lab, n) in enumerate(labelled) for k in range(1, n + 1)]
    distinct = np.unique(scores)[::-1]  # descending: curve point j + 1 belongs to distinct[j]
    picks = np.arange(len(distinct)) if len(distinct) <= points else rng.choice(len(distinct), points, replace=False)
    for j in picks:
        t = distinct[j]
        want_fpr = (scores[ok] >= t).sum() / ok.sum()
        want_pro = np.mean([(maps[i][c] >= t).mean() for i, c in comps])
        assert abs(fpr[j + 1] - min(want_fpr, 1.0)) < 1e-12 and abs(pro[j + 1] - min(want_pro, 1.0)) < 1e-12, (j, t)


def area(x, y, limit):
    """Trapezoid integral of the piecewise linear curve (x increasing) up to x = limit."""
    total = 0.0
    for i in range(1, len(x)):
        x0, y0, x1, y1 = x[i - 1], y[i - 1], x[i], y[i]
        if x0 >= limit:
            break
        if x1 <= limit:
            total += (x1 - x0) * (y0 + y1) / 2
        else:
            y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            total += (limit - x0) * (y0 + y_limit) / 2
            break
    return total / limit


def blob_masks(rng, images, height, width):
    """Masks with ellipses, single pixels and diagonal chains (one 8-connected region each)."""
    masks = np.zeros((images, height, width), dtype=bool)
    y, x = np.mgrid[0:height, 0:width]
    for i in range(images):
        if i % 3 == 0:
            continue  # an anomaly-free image
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.integers(0, height), rng.integers(0, width)
            ry, rx = rng.uniform(1.0, 7.0), rng.uniform(1.0, 7.0)
            masks[i] |= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        start = rng.integers(0, min(height, width) - 6)
        for d in range(5):
            masks[i, start + d, start + d] = True  # diagonal: one region under 8-connectivity
        masks[i, rng.integers(0, height), rng.integers(0, width)] = True
    return masks


def pixel_case(rng, images, height, width, levels=None):
    masks = blob_masks(rng, images, height, width)
    maps = rng.normal(size=masks.shape) + 1.5 * masks + 0.8 * ndimage.uniform_filter(masks.astype(float), size=(1, 5, 5))
    maps[:, :3, :] = 0.0  # exact zeros, as masked pixels have
    if levels is not None:
        maps = np.round(maps * levels) / levels  # heavy ties
    return maps.astype(np.float32), masks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    rng = np.random.default_rng(20240617)
    tensors, metadata = {}, {}

    image_cases = {
        "continuous": (rng.normal(size=60), rng.random(60) < 0.4),
        "ties": (np.round(rng.normal(size=80) * 2) / 2, rng.random(80) < 0.5),
        "separable": (np.arange(10, dtype=float), np.arange(10) >= 4),
        "small": (np.array([0.5, 0.5, 0.5, 0.2]), np.array([True, False, True, False])),
    }
    for name, (scores, labels) in image_cases.items():
        scores = scores.astype(np.float32)
        labels = labels.astype(bool)
        tensors[f"image.{name}.scores"] = torch.from_numpy(scores)
        tensors[f"image.{name}.labels"] = torch.from_numpy(labels.astype(np.float32))
        metadata[f"image.{name}.auroc"] = repr(float(roc_auc_score(labels, scores)))

    pixel_cases = {
        "continuous": pixel_case(rng, 9, 40, 36),
        "ties": pixel_case(rng, 9, 40, 36, levels=3),
    }
    for name, (maps, masks) in pixel_cases.items():
        tensors[f"pixel.{name}.maps"] = torch.from_numpy(maps)
        tensors[f"pixel.{name}.masks"] = torch.from_numpy(masks.astype(np.float32))
        metadata[f"pixel.{name}.auroc"] = repr(float(roc_auc_score(masks.ravel(), maps.ravel())))
        metadata[f"pixel.{name}.regions"] = str(sum(n for _, n in regions(masks)))
        exact = pro_curve_exact(maps, masks)
        check_exact_curve(maps, masks, *exact, np.random.default_rng(1))
        sampled = pro_curve_sampled(maps, masks, 99)
        for limit in LIMITS:
            metadata[f"pixel.{name}.aupro.exact.{limit}"] = repr(area(*exact, limit))
            metadata[f"pixel.{name}.aupro.sampled99.{limit}"] = repr(area(*sampled, limit))

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "metrics.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    for key in sorted(metadata):
        print(f"  {key} = {metadata[key]}")


if __name__ == "__main__":
    main()
