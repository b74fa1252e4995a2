"""Check train_step_tiny.safetensors against a hand-written NumPy (float64) derivation of
the mapper training step -- blend, mappers, joint cosine loss, back-propagation, Adam -- and that
it is up to date.

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

from test_fixtures import assert_close, gelu

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parents[1] / "Tests" / "Fixtures" / "train_step_tiny.safetensors"
MAPPERS = ("mapper_2d_to_3d", "mapper_3d_to_2d")
LAYERS = ("input", "projection", "output")
KEYS = [f"{m}.{layer}.{p}" for m in MAPPERS for layer in LAYERS for p in ("weight", "bias")]


@pytest.fixture(scope="module")
def fx():
    with safe_open(FIXTURE, "np") as f:
        meta = f.metadata()
    return {k: v.astype(np.float64) for k, v in load_file(FIXTURE).items()}, meta


def params(t, prefix):
    return {k: t[f"{prefix}.{k}"] for k in KEYS}


# ------------------------------------------------------------ NumPy reference


def blend(t, s, path, rows):
    """Pixel p = sum over its CSR terms of weight * rows[source]."""
    offsets = t[f"s{s}.{path}_offsets"].astype(int)
    sources = t[f"s{s}.{path}_sources"].astype(int)
    weights = t[f"s{s}.{path}_weights"]
    assert offsets[0] == 0 and offsets[-1] == len(sources) and (np.diff(offsets) >= 1).all()
    assert (weights > 0).all() and (sources >= 0).all() and (sources < len(rows)).all()
    return np.stack([sum(weights[i] * rows[sources[i]] for i in range(offsets[p], offsets[p + 1]))
                     for p in range(len(offsets) - 1)])


def features(t):
    """E2D, E3D [pixels of the whole batch, D]."""
    samples = sorted({int(k.split(".")[0][1:]) for k in t if k.startswith("s")})
    e2d = np.concatenate([blend(t, s, "rgb", t[f"s{s}.tokens"]) for s in samples])
    e3d = np.concatenate([blend(t, s, "xyz", t[f"s{s}.points"]) for s in samples])
    return e2d, e3d


def gelu_derivative(x):
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def mapper_forward(p, m, x):
    """Returns the output and the pre-activations (h1, h2) of both hidden layers."""
    h1 = x @ p[f"{m}.input.weight"].T + p[f"{m}.input.bias"]
    h2 = gelu(h1) @ p[f"{m}.projection.weight"].T + p[f"{m}.projection.bias"]
    y = gelu(h2) @ p[f"{m}.output.weight"].T + p[f"{m}.output.bias"]
    return y, (x, h1, h2)


def mapper_backward(p, m, cache, dy):
    """Gradients of the mapper's parameters given dL/dy."""
    x, h1, h2 = cache
    g = {f"{m}.output.weight": dy.T @ gelu(h2), f"{m}.output.bias": dy.sum(0)}
    dh2 = (dy @ p[f"{m}.output.weight"]) * gelu_derivative(h2)
    g.update({f"{m}.projection.weight": dh2.T @ gelu(h1), f"{m}.projection.bias": dh2.sum(0)})
    dh1 = (dh2 @ p[f"{m}.projection.weight"]) * gelu_derivative(h1)
    g.update({f"{m}.input.weight": dh1.T @ x, f"{m}.input.bias": dh1.sum(0)})
    return g


def cosine(y, e, eps=1e-6):
    """Row-wise cos = y.e / max(|y||e|, eps) and d cos / d y."""
    ny, ne = np.linalg.norm(y, axis=1), np.linalg.norm(e, axis=1)
    denominator = np.maximum(ny * ne, eps)
    cos = (y * e).sum(1) / denominator
    assert (ny * ne > eps).all()  # the fixture stays on the smooth branch
    dcos = e / denominator[:, None] - cos[:, None] * y / (ny ** 2)[:, None]
    return cos, dcos


def loss_and_gradients(t, p):
    e2d, e3d = features(t)
    n = len(e2d)
    y3, cache3 = mapper_forward(p, MAPPERS[0], e2d)
    y2, cache2 = mapper_forward(p, MAPPERS[1], e3d)
    cos3, dcos3 = cosine(y3, e3d)
    cos2, dcos2 = cosine(y2, e2d)
    loss = (1 - cos3.mean()) + (1 - cos2.mean())
    grads = {**mapper_backward(p, MAPPERS[0], cache3, -dcos3 / n),
             **mapper_backward(p, MAPPERS[1], cache2, -dcos2 / n)}
    return loss, cos3.mean(), cos2.mean(), grads


def adam(p, grads_per_step, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """PyTorch's Adam: p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps); yields p after each step."""
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    p = dict(p)
    for step, g in enumerate(grads_per_step, start=1):
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            p[k] = p[k] - lr / (1 - b1 ** step) * m[k] / (np.sqrt(v[k]) / math.sqrt(1 - b2 ** step) + eps)
        yield dict(p)


# ------------------------------------------------------------------- tests


def test_metadata(fx):
    t, meta = fx
    assert meta["lr"] == "0.001" and meta["betas"] == "0.9,0.999" and meta["adam_eps"] == "1e-08"
    pixels = [int(x) for x in meta["pixels"].split(",")]
    assert [len(t[f"s{s}.rgb_offsets"]) - 1 for s in range(3)] == pixels
    assert [len(t[f"s{s}.xyz_offsets"]) - 1 for s in range(3)] == pixels
    for s in range(3):
        for path in ("rgb", "xyz"):
            assert 1 <= np.diff(t[f"s{s}.{path}_offsets"]).min() and np.diff(t[f"s{s}.{path}_offsets"]).max() <= 4


def test_initialisation_is_pytorch_default(fx):
    t, _ = fx
    for k in KEYS:
        w = t[f"before.{k}"]
        layer = k.rsplit(".", 1)[0]
        fan_in = t[f"before.{layer}.weight"].shape[1]
        assert np.abs(w).max() <= fan_in ** -0.5


def test_step_one(fx):
    t, _ = fx
    before = params(t, "before")
    loss, cos3d, cos2d, grads = loss_and_gradients(t, before)
    assert_close(np.array([loss]), t["loss"])
    assert_close(np.array([cos3d]), t["cos3d"])
    assert_close(np.array([cos2d]), t["cos2d"])
    for k in KEYS:
        assert_close(grads[k], t[f"grad.{k}"])


def test_step_two(fx):
    t, _ = fx
    loss, cos3d, cos2d, grads = loss_and_gradients(t, params(t, "after"))
    assert_close(np.array([loss]), t["loss2"])
    assert_close(np.array([cos3d]), t["cos3d2"])
    assert_close(np.array([cos2d]), t["cos2d2"])
    for k in KEYS:
        assert_close(grads[k], t[f"grad2.{k}"])


def test_adam(fx):
    """Two Adam steps from the stored weights and gradients."""
    t, _ = fx
    after, after2 = adam(params(t, "before"), [params(t, "grad"), params(t, "grad2")])
    for k in KEYS:
        assert_close(after[k], t[f"after.{k}"])
        assert_close(after2[k], t[f"after2.{k}"])
    # The loss went down.
    assert t["loss2"][0] < t["loss"][0]


def test_train_fixture_is_up_to_date(tmp_path):
    subprocess.run([sys.executable, str(HERE / "make_train_fixtures.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    assert (tmp_path / FIXTURE.name).read_bytes() == FIXTURE.read_bytes()
