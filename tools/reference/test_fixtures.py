"""Check the golden fixtures against an independent NumPy (float64) implementation
of the formulas (docs/architecture.md), and check that they are up to date.

Run with: /usr/bin/python3 -m pytest tools/reference
"""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "Tests" / "Fixtures"
RTOL = 1e-5  # fixtures are float64 results rounded to float32


@pytest.fixture(scope="module")
def kernels():
    return {k: v.astype(np.float64) for k, v in load_file(FIXTURES / "kernels.safetensors").items()}


@pytest.fixture(scope="module")
def vit():
    return {k: v.astype(np.float64) for k, v in load_file(FIXTURES / "vit_tiny.safetensors").items()}


def assert_close(actual, expected):
    """Max abs difference within RTOL of the expected max magnitude (or 1e-30)."""
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-30)
    assert np.abs(actual - expected).max() <= RTOL * scale


# ------------------------------------------------------------ NumPy reference


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(qkv, heads):
    """Rows 0..D-1 of the qkv features are q, then k, then v; head h = slice h."""
    dim = qkv.shape[1] // 3
    hd = dim // heads
    out = np.empty((qkv.shape[0], dim))
    for h in range(heads):
        q, k, v = (qkv[:, part * dim + h * hd: part * dim + (h + 1) * hd] for part in range(3))
        out[:, h * hd:(h + 1) * hd] = softmax(q @ k.T * hd ** -0.5) @ v
    return out


def patchify(x, w, b, patch):
    """Conv with kernel = stride = patch as one matrix product per patch."""
    c, hh, ww = x.shape
    rows, cols = hh // patch, ww // patch
    patches = x.reshape(c, rows, patch, cols, patch).transpose(1, 3, 0, 2, 4).reshape(rows * cols, -1)
    y = patches @ w.reshape(w.shape[0], -1).T + b
    return y.T.reshape(-1, rows, cols)


def bilinear_axis(n_in, n_out):
    """(i0, i1, weight of i1) per output index: src = (dst+0.5)*in/out - 0.5, clamped at 0."""
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
    i0 = np.floor(src).astype(int)
    return i0, np.minimum(i0 + 1, n_in - 1), src - i0


def bilinear(x, size):
    r0, r1, rw = bilinear_axis(x.shape[1], size[0])
    c0, c1, cw = bilinear_axis(x.shape[2], size[1])
    rows = x[:, r0] * (1 - rw)[:, None] + x[:, r1] * rw[:, None]
    return rows[:, :, c0] * (1 - cw) + rows[:, :, c1] * cw


def adaptive_pool(x, size):
    """Output i averages input [floor(i*in/out), ceil((i+1)*in/out))."""
    def bounds(n_in, n_out):
        return [(i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]
    out = np.empty((x.shape[0],) + tuple(size))
    for i, (r0, r1) in enumerate(bounds(x.shape[1], size[0])):
        for j, (s0, s1) in enumerate(bounds(x.shape[2], size[1])):
            out[:, i, j] = x[:, r0:r1, s0:s1].mean(axis=(1, 2))
    return out


def box_filter(x, k, pad):
    """k x k mean with zero padding, stride 1, always divided by k*k."""
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, w = xp.shape[1] - k + 1, xp.shape[2] - k + 1
    return sum(xp[:, i:i + h, j:j + w] for i in range(k) for j in range(k)) / (k * k)


def vit_forward(t, depth, heads, eps):
    """DINO ViT forward on the fixture weights; returns the per-stage trace."""
    w = t["patch_embed.proj.weight"]
    patch = w.shape[-1]
    tokens = patchify(t["input"], w, t["patch_embed.proj.bias"], patch)
    tokens = tokens.reshape(tokens.shape[0], -1).T
    trace = {"trace.patch_embed": tokens}
    x = np.concatenate([t["cls_token"][0], tokens]) + t["pos_embed"][0]
    trace["trace.embed"] = x
    for i in range(depth):
        p = f"blocks.{i}."
        h = layer_norm(x, t[p + "norm1.weight"], t[p + "norm1.bias"], eps)
        h = attention(h @ t[p + "attn.qkv.weight"].T + t[p + "attn.qkv.bias"], heads)
        x = x + h @ t[p + "attn.proj.weight"].T + t[p + "attn.proj.bias"]
        h = layer_norm(x, t[p + "norm2.weight"], t[p + "norm2.bias"], eps)
        h = gelu(h @ t[p + "mlp.fc1.weight"].T + t[p + "mlp.fc1.bias"])
        x = x + h @ t[p + "mlp.fc2.weight"].T + t[p + "mlp.fc2.bias"]
        trace[f"trace.block.{i}"] = x
        normed = layer_norm(x, t["norm.weight"], t["norm.bias"], eps)
        grid = int(round(math.sqrt(x.shape[0] - 1)))
        features = normed[1:].T.reshape(-1, grid, grid)
        trace[f"trace.norm.{i + 1}"] = normed
        trace[f"trace.features.{i + 1}"] = features
        trace[f"trace.upsampled.{i + 1}"] = bilinear(features, (grid * patch,) * 2)
    return trace


# ---------------------------------------------------------------------- tests


def test_gelu(kernels):
    x = kernels["gelu.x"]
    assert 0.0 in x and x.min() <= -10 and x.max() >= 1e6
    assert_close(gelu(x), kernels["gelu.y"])


@pytest.mark.parametrize("eps,key", [(1e-6, "layernorm.y6"), (1e-5, "layernorm.y5")])
def test_layernorm(kernels, eps, key):
    k = kernels
    assert_close(layer_norm(k["layernorm.x"], k["layernorm.w"], k["layernorm.b"], eps), k[key])


def test_softmax(kernels):
    assert kernels["softmax.x"].max() > 50
    assert_close(softmax(kernels["softmax.x"]), kernels["softmax.y"])


def test_attention(kernels):
    assert_close(attention(kernels["attention.qkv"], heads=2), kernels["attention.y"])


def test_patchify(kernels):
    k = kernels
    assert_close(patchify(k["patchify.x"], k["patchify.w"], k["patchify.b"], 8), k["patchify.y"])


@pytest.mark.parametrize("name", ["bilinear", "bilinear28"])
def test_bilinear(kernels, name):
    expected = kernels[f"{name}.y"]
    assert_close(bilinear(kernels[f"{name}.x"], expected.shape[1:]), expected)


@pytest.mark.parametrize("name", ["adaptive", "adaptive222"])
def test_adaptive(kernels, name):
    expected = kernels[f"{name}.y"]
    assert_close(adaptive_pool(kernels[f"{name}.x"], expected.shape[1:]), expected)


@pytest.mark.parametrize("name,k,pad", [("avgpool3", 3, 0), ("box5", 5, 2), ("box7", 7, 3)])
def test_box_filters(kernels, name, k, pad):
    assert_close(box_filter(kernels[f"{name}.x"], k, pad), kernels[f"{name}.y"])


def test_maxgroups(kernels):
    assert_close(kernels["maxgroups.x"].max(axis=1), kernels["maxgroups.y"])


def test_linear(kernels):
    k = kernels
    assert_close(k["linear.x"] @ k["linear.w"].T + k["linear.b"], k["linear.y"])


def test_vit_trace(vit):
    with safe_open(FIXTURES / "vit_tiny.safetensors", "np") as f:
        meta = f.metadata()
    trace = vit_forward(vit, int(meta["depth"]), int(meta["heads"]), float(meta["eps"]))
    assert sorted(trace) == sorted(k for k in vit if k.startswith("trace."))
    for key, value in trace.items():
        assert_close(value, vit[key])


def test_fixtures_are_up_to_date(tmp_path):
    subprocess.run([sys.executable, str(HERE / "make_fixtures.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("vit_tiny.safetensors", "kernels.safetensors"):
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name
