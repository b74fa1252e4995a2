"""Check the 3D / scoring / pipeline fixtures against an independent NumPy (float64)
re-derivation of the 3D extractor, alignment, mappers and score, and that they are up to date.

Run with: /usr/bin/python3 -m pytest tools/reference
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from test_fixtures import (adaptive_pool, assert_close, attention, bilinear, box_filter, gelu,
                           layer_norm, vit_forward)

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "Tests" / "Fixtures"
NAMES = ("pointmae_tiny", "align_tiny", "mapper_tiny", "score_tiny", "pipeline_tiny")


def load(name):
    path = FIXTURES / f"{name}.safetensors"
    with safe_open(path, "np") as f:
        meta = f.metadata()
    raw = load_file(path)
    return {k: v.astype(np.float64) for k, v in raw.items()}, raw, meta


@pytest.fixture(scope="module")
def pointmae():
    return load("pointmae_tiny")


@pytest.fixture(scope="module")
def pipeline():
    return load("pipeline_tiny")


# ------------------------------------------------------------ NumPy reference


def fps(points32, count):
    """pointnet2 kernel rule in float32: start 0, running min of squared distances,
    |p|^2 <= 1e-3 skipped, first (lowest) index of the maximum."""
    p = points32.astype(np.float32)
    mag = (p * p).sum(1, dtype=np.float32)
    temp = np.full(len(p), 1e10, dtype=np.float32)
    chosen = [0]
    for _ in range(1, count):
        diff = p - p[chosen[-1]]
        d = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
        best, besti = np.float32(-1), 0
        for k in range(len(p)):
            if mag[k] <= 1e-3:
                continue
            temp[k] = min(d[k], temp[k])
            if temp[k] > best:
                best, besti = temp[k], k
        chosen.append(besti)
    return np.array(chosen)


def knn(points, centers, k):
    """k nearest (float64 squared distance), ties by lower index."""
    out = []
    for c in centers:
        d = ((points - c) ** 2).sum(1)
        out.append(np.lexsort((np.arange(len(points)), d))[:k])
    return np.array(out)


def conv1(x, w, b):
    """1x1 Conv1d on [G, C, n] with weight [out, in, 1]."""
    return np.einsum("oi,gin->gon", w[:, :, 0], x) + b[None, :, None]


def batch_norm(x, t, prefix, mode, eps=1e-5):
    if mode == "frame":
        mean, var = x.mean((0, 2)), x.var((0, 2))
    else:
        mean, var = t[prefix + "running_mean"], t[prefix + "running_var"]
    return ((x - mean[None, :, None]) / np.sqrt(var[None, :, None] + eps)
            * t[prefix + "weight"][None, :, None] + t[prefix + "bias"][None, :, None])


def mini_pointnet(t, neighborhoods, mode, p=""):
    x = neighborhoods.transpose(0, 2, 1)
    e = p + "encoder."
    f = conv1(x, t[e + "first_conv.0.weight"], t[e + "first_conv.0.bias"])
    f = np.maximum(batch_norm(f, t, e + "first_conv.1.", mode), 0)
    f = conv1(f, t[e + "first_conv.3.weight"], t[e + "first_conv.3.bias"])
    f = np.concatenate([np.repeat(f.max(2, keepdims=True), f.shape[2], axis=2), f], axis=1)
    f = conv1(f, t[e + "second_conv.0.weight"], t[e + "second_conv.0.bias"])
    f = np.maximum(batch_norm(f, t, e + "second_conv.1.", mode), 0)
    f = conv1(f, t[e + "second_conv.3.weight"], t[e + "second_conv.3.bias"])
    return f.max(2)


def linear(x, t, prefix, bias=True):
    y = x @ t[prefix + "weight"].T
    return y + t[prefix + "bias"] if bias else y


def pointmae_forward(t, neighborhoods, centers, depth, fetch, heads, mode, p=""):
    """Tokens, pos, per-block outputs and the normed concatenated features."""
    x = mini_pointnet(t, neighborhoods, mode, p)
    trace = {"tokens": x}
    pos = linear(gelu(linear(centers, t, p + "pos_embed.0.")), t, p + "pos_embed.2.")
    trace["pos"] = pos
    features = []
    for i in range(depth):
        b = f"{p}blocks.blocks.{i}."
        x = x + pos
        h = layer_norm(x, t[b + "norm1.weight"], t[b + "norm1.bias"], 1e-5)
        h = attention(linear(h, t, b + "attn.qkv.", bias=False), heads)
        x = x + linear(h, t, b + "attn.proj.")
        h = layer_norm(x, t[b + "norm2.weight"], t[b + "norm2.bias"], 1e-5)
        x = x + linear(gelu(linear(h, t, b + "mlp.fc1.")), t, b + "mlp.fc2.")
        trace[f"block.{i}"] = x
        if i in fetch:
            features.append(layer_norm(x, t[p + "norm.weight"], t[p + "norm.bias"], 1e-5))
    trace["features"] = np.concatenate(features, axis=1)
    return trace


def interpolate3(points, centers, feats):
    idx = knn(centers, points, 3)
    d2 = ((points[:, None, :] - centers[idx]) ** 2).sum(-1)
    w = 1 / (d2 + 1e-8)
    w /= w.sum(1, keepdims=True)
    return (feats[idx] * w[:, :, None]).sum(1), w, idx


def align(pixels, point_feats, size):
    full = np.zeros((point_feats.shape[1], size * size))
    full[:, pixels] = point_feats.T
    pooled = box_filter(full.reshape(-1, size, size), 3, 0)
    return adaptive_pool(pooled, (size, size))


def mapper(t, x, p=""):
    h = gelu(linear(x, t, p + "input."))
    h = gelu(linear(h, t, p + "projection."))
    return linear(h, t, p + "output.")


def score(e2d, e2d_hat, e3d, e3d_hat):
    mask = e3d.sum(0) == 0

    def psi(a, b):
        na = a / np.maximum(np.linalg.norm(a, axis=0), 1e-12)
        nb = b / np.maximum(np.linalg.norm(b, axis=0), 1e-12)
        return np.where(mask, 0, np.linalg.norm(nb - na, axis=0))

    psi2d, psi3d = psi(e2d, e2d_hat), psi(e3d, e3d_hat)
    smoothed = (psi2d * psi3d)[None]
    for _ in range(5):
        smoothed = box_filter(smoothed, 5, 2)
    for _ in range(3):
        smoothed = box_filter(smoothed, 7, 3)
    smoothed = smoothed[0]
    value = smoothed.max() / np.sqrt(smoothed[smoothed != 0].mean())
    return mask, psi2d, psi3d, psi2d * psi3d, smoothed, np.array([value])


def ints(x):
    return np.rint(x).astype(np.int64)


# ---------------------------------------------------------------------- tests


def test_pointmae_points(pointmae):
    t, raw, meta = pointmae
    norm2 = (t["points"] ** 2).sum(1)
    near = np.nonzero(norm2 <= 1e-3)[0]
    assert len(near) == 2 and not set(near) & set(ints(t["trace.fps_indices"]))
    assert len(np.unique(raw["points"], axis=0)) < len(raw["points"])  # exact duplicates
    assert int(meta["groups"]) == 16 and int(meta["members"]) == 8


def test_pointmae_grouping(pointmae):
    t, raw, meta = pointmae
    points = t["points"]
    centers_idx = fps(raw["points"], int(meta["groups"]))
    assert np.array_equal(centers_idx, ints(t["trace.fps_indices"]))
    groups = knn(points, points[centers_idx], int(meta["members"]))
    assert np.array_equal(groups, ints(t["trace.knn_indices"]))
    assert np.array_equal(points[centers_idx], t["trace.centers"])
    assert_close(points[groups] - points[centers_idx][:, None], t["trace.neighborhoods"])


def test_pointmae_duplicate_ties(pointmae):
    """Point 0 and its duplicate both lie at distance 0 of the first centre, lower index first."""
    t, raw, _ = pointmae
    dup = [i for i in range(1, len(raw["points"])) if np.array_equal(raw["points"][i], raw["points"][0])]
    assert dup and list(ints(t["trace.knn_indices"][0][:2])) == [0, dup[0]]


@pytest.mark.parametrize("mode", ["frame", "running"])
def test_pointmae_tokens(pointmae, mode):
    t, _, _ = pointmae
    assert (t["encoder.first_conv.1.running_var"] > 0).all()
    assert (t["encoder.second_conv.1.running_var"] > 0).all()
    tokens = mini_pointnet(t, t["trace.neighborhoods"], mode)
    assert_close(tokens, t[f"trace.tokens.{mode}"])


def test_pointmae_trace(pointmae):
    t, _, meta = pointmae
    heads = int(meta["heads"])
    full = pointmae_forward(t, t["trace.neighborhoods"], t["trace.centers"], 4, (1, 2, 3), heads, "frame")
    for key in ("pos", "block.0", "block.1", "block.2", "block.3"):
        assert_close(full[key], t[f"trace.{key}"])
    assert_close(full["features"], t["trace.features.4"])
    one = pointmae_forward(t, t["trace.neighborhoods"], t["trace.centers"], 1, (0,), heads, "frame")
    assert_close(one["features"], t["trace.features.1"])
    run = pointmae_forward(t, t["trace.neighborhoods"], t["trace.centers"], 4, (1, 2, 3), heads, "running")
    assert_close(run["features"], t["trace.features.4.running"])


def test_align():
    t, _, meta = load("align_tiny")
    pixels = ints(t["align.pixels"])
    assert np.all(np.diff(pixels) > 0)  # row-major order
    blended, w, idx = interpolate3(t["align.points"], t["align.centers"], t["align.features"])
    assert np.array_equal(idx, ints(t["align.indices"]))
    assert_close(w, t["align.weights"])
    assert w.max() > 0.999  # points that are centres take (almost) all the weight
    assert_close(blended, t["align.point_features"])
    assert_close(align(pixels, blended, int(meta["size"])), t["align.xyz_map"])


def test_mapper():
    t, _, _ = load("mapper_tiny")
    assert t["input.weight"].shape == (20, 24) and t["output.weight"].shape == (16, 20)
    assert_close(mapper(t, t["x"]), t["y"])


def test_score():
    t, _, _ = load("score_tiny")
    mask, psi2d, psi3d, psi, smoothed, value = score(t["e2d"], t["e2d_hat"], t["e3d"], t["e3d_hat"])
    assert np.array_equal(mask, t["mask"] == 1)
    assert mask[5, 5] and not (t["e3d"][:, 5, 5] == 0).all()  # sums to 0, not all zero
    for name, got in (("psi2d", psi2d), ("psi3d", psi3d), ("psi", psi), ("anomaly_map", smoothed),
                      ("score", value)):
        assert_close(got, t[name])
    # the non-zero filter matters here: the mean over all pixels gives another score
    assert (smoothed == 0).any()
    assert abs(smoothed.max() / np.sqrt(smoothed.mean()) - value[0]) > 1e-3 * value[0]


def test_pipeline(pipeline):
    t, raw, meta = pipeline
    size = int(meta["size"])
    vit = {k[4:]: v for k, v in t.items() if k.startswith("vit.")}
    vit["input"] = t["rgb_input"]
    depth = int(meta["vit_blocks"])
    trace = vit_forward(vit, depth, int(meta["vit_heads"]), float(meta["vit_eps"]))
    assert_close(trace[f"trace.features.{depth}"], t["rgb_features"])
    assert_close(bilinear(t["rgb_features"], (size, size)), t["rgb_map"])

    xyz = raw["xyz_input"]
    fg = (xyz != 0).all(2)
    assert np.array_equal(fg, t["foreground"] == 1) and 0.3 < fg.mean() < 0.5
    pixels = np.nonzero(fg.reshape(-1))[0]
    points32 = xyz.reshape(-1, 3)[pixels]
    points = points32.astype(np.float64)
    center_idx = fps(points32, int(meta["groups"]))
    assert np.array_equal(center_idx, ints(t["center_indices"]))
    centers = points[center_idx]
    assert np.array_equal(centers, t["centers"])
    groups = knn(points, centers, int(meta["members"]))
    assert np.array_equal(groups, ints(t["groups"]))

    fetch = tuple(int(i) for i in meta["pointmae_feature_blocks"].split(","))
    pm = pointmae_forward(t, points[groups] - centers[:, None], centers, int(meta["pointmae_blocks"]),
                          fetch, int(meta["pointmae_heads"]), meta["batchnorm"], p="pointmae.")
    assert_close(pm["features"].T, t["xyz_features"])
    blended, _, _ = interpolate3(points, centers, t["xyz_features"].T)
    assert_close(align(pixels, blended, size), t["xyz_map"])

    def per_pixel(p, fmap):
        d = fmap.shape[0]
        return mapper(t, fmap.reshape(d, -1).T, p).T.reshape(-1, size, size)

    e3d_hat = per_pixel("mapper_2d_to_3d.", t["rgb_map"])
    e2d_hat = per_pixel("mapper_3d_to_2d.", t["xyz_map"])
    _, psi2d, psi3d, _, smoothed, value = score(t["rgb_map"], e2d_hat, t["xyz_map"], e3d_hat)
    for name, got in (("psi2d", psi2d), ("psi3d", psi3d), ("anomaly_map", smoothed), ("score", value)):
        assert_close(got, t[name])


def test_fixture_sizes():
    for name in NAMES:
        assert (FIXTURES / f"{name}.safetensors").stat().st_size < 1_000_000, name


def test_pipeline_fixtures_are_up_to_date(tmp_path):
    subprocess.run([sys.executable, str(HERE / "make_pipeline_fixtures.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in NAMES:
        path = f"{name}.safetensors"
        assert (tmp_path / path).read_bytes() == (FIXTURES / path).read_bytes(), path
