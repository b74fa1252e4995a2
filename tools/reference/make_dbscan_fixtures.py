#!/usr/bin/env python3
"""Generate ``Tests/Fixtures/dbscan.safetensors``: Open3D's DBSCAN labels on ``cfm synth`` parts.

The official preprocessing keeps the largest group of Open3D's
``PointCloud.cluster_dbscan(eps=0.006, min_points=30)`` on the foreground points left
after plane removal, in row-major pixel order.  This script renders every ``cfm synth``
class with the ``cfm`` binary, removes the table plane the simple way (least-squares plane
through the foreground points of the 10-pixel border ring, points closer than 5 mm to it
cleared), and stores the remaining points with Open3D's labels:

* ``<case>.points`` [N, 3] F32 (metres, row-major pixel order) and ``<case>.labels`` [N]
  F32 (cluster 0, 1, ... or -1 for noise) for every case of ``CASES``: each class at
  100x100 (a nominal and a defective part; 2 mm pixels, so eps holds about as many
  points as min_points: border points, noise and split clusters), the gland at 200x200,
  and windows of 800x800 frames at sensor density (the gland's hub, collar and hex ring,
  the cookie's edge).
* metadata ``open3d`` (version), ``eps``, ``min_points``.

Open3D is a dev-time reference only (PyPI, in a venv; never a runtime dependency):

    python3 -m venv /work/venv-open3d && /work/venv-open3d/bin/pip install open3d tifffile safetensors
    /work/venv-open3d/bin/python tools/reference/make_dbscan_fixtures.py --cfm .build/debug/cfm

Deterministic: the same ``cfm`` and Open3D give the same file byte for byte.
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import open3d as o3d
import tifffile
from safetensors.numpy import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
EPS, MIN_POINTS = 0.006, 30
# name: (size, class, test folder, window rows, window columns) -- window None = whole frame.
CASES = {
    "cookie_good_100": (100, "cookie", "good", None),
    "cookie_shape_100": (100, "cookie", "shape", None),
    "box_good_100": (100, "box", "good", None),
    "box_combined_100": (100, "box", "combined", None),
    "gland_good_100": (100, "gland", "good", None),
    "gland_crossmodal_100": (100, "gland", "crossmodal", None),
    "gland_good_200": (200, "gland", "good", None),
    "gland_hub_800": (800, "gland", "good", (slice(330, 420), slice(340, 400))),
    "cookie_edge_800": (800, "cookie", "good", (slice(380, 420), slice(120, 260))),
}


def plane_removed(cloud, border=10, distance=0.005):
    """The cloud with the table plane cleared: least-squares plane of the border ring's
    foreground points, points with |n.p + d| < distance set to 0."""
    foreground = np.all(cloud != 0, axis=2)
    ring = np.zeros_like(foreground)
    ring[:border, :] = ring[-border:, :] = ring[:, :border] = ring[:, -border:] = True
    points = cloud[ring & foreground].astype(np.float64)
    centre = points.mean(axis=0)
    normal = np.linalg.svd(points - centre)[2][2]
    near = np.abs((cloud.astype(np.float64) - centre) @ normal) < distance
    out = cloud.copy()
    out[near & foreground] = 0
    return out


def dbscan(points):
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    return np.asarray(cloud.cluster_dbscan(eps=EPS, min_points=MIN_POINTS, print_progress=False), dtype=np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cfm", type=Path, required=True, help="the cfm binary (cfm synth renders the parts)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "Tests" / "Fixtures" / "dbscan.safetensors")
    args = parser.parse_args()
    tensors = {}
    with tempfile.TemporaryDirectory() as work:
        for size in sorted({case[0] for case in CASES.values()}):
            subprocess.run([str(args.cfm), "synth", "--out", f"{work}/{size}", "--size", str(size), "--seed", "1",
                            "--train", "0", "--validation", "0", "--test-per-type", "1"], check=True, capture_output=True)
        for name, (size, part, folder, window) in CASES.items():
            cloud = plane_removed(tifffile.imread(f"{work}/{size}/{part}/test/{folder}/xyz/000.tiff"))
            if window is not None:
                cloud = cloud[window]
            points = cloud[np.all(cloud != 0, axis=2)].astype(np.float32)
            labels = dbscan(points)
            tensors[f"{name}.points"] = points
            tensors[f"{name}.labels"] = labels.astype(np.float32)
            counts = np.bincount(labels + 1)
            print(f"{name}: {len(points)} points, {labels.max() + 1} clusters, {counts[0]} noise, "
                  f"largest group {np.argmax(counts) - 1} of {counts.max()}")
    save_file(tensors, str(args.out), metadata={"open3d": o3d.__version__, "eps": repr(EPS), "min_points": str(MIN_POINTS)})
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
