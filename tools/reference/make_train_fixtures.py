#!/usr/bin/python3
"""Generate the golden fixture of one mapper training step (joint cosine loss, Adam).

Writes ``train_step_tiny.safetensors`` (default directory: Tests/Fixtures of the
repository): two tiny mappers (2D->3D 12->8, 3D->2D 8->12, hidden 10, PyTorch's
Linear default init U(-1/sqrt(in), 1/sqrt(in)) drawn from the fixture's
generator), a batch of 3 samples whose per-pixel features are sparse blends of
source rows (CSR arrays, as the Swift `PixelCombinations`), the joint cosine
loss over all pixels of the batch, its gradients, and the parameters after one
and two `torch.optim.Adam` steps (lr 1e-3, betas 0.9/0.999, eps 1e-8) on the
same batch.

Same conventions as make_fixtures.py: one seeded generator, float32 weights and
inputs, everything else computed in float64 from them (the optimiser too) and
rounded once, metadata keys sorted, byte-identical re-runs.  As a robustness
check the same two steps are also run in float32 and must agree with the
float64 results to well within the 1e-5 parity tolerance (no gradient close
enough to 0 for float32 rounding to flip the sign of an Adam update).
"""

import copy

import torch

import cfm_reference as ref
from make_fixtures import generator, randn, write, output_directory
from make_pipeline_fixtures import metadata_of

D2D, D3D = 12, 8                  # 2D (token) and 3D (point) feature widths
TOKENS, POINTS = 6, 5             # sources per sample
PIXELS = (7, 11, 9)               # pixels per sample (batch of 3)
MAX_TERMS = 4                     # 1..4 blend terms per pixel
LR, BETAS, ADAM_EPS = 1e-3, (0.9, 0.999), 1e-8
COS_EPS = 1e-6
MAPPERS = (("mapper_2d_to_3d", D2D, D3D), ("mapper_3d_to_2d", D3D, D2D))


# ----------------------------------------------------------------- inputs


def default_mapper(gen, in_features, out_features):
    """A Mapper with PyTorch's Linear default init, U(-1/sqrt(in), 1/sqrt(in)) for
    weights and biases (what kaiming_uniform_(a=sqrt(5)) gives), from `gen`."""
    mapper = ref.Mapper(in_features, out_features)
    with torch.no_grad():
        for layer in (mapper.input, mapper.projection, mapper.output):
            bound = layer.in_features ** -0.5
            for p in (layer.weight, layer.bias):
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
    return mapper


def blend_csr(gen, pixels, sources):
    """CSR blend of `pixels` rows over `sources` rows: 1..MAX_TERMS distinct sources per
    pixel with weights U(0.1, 1).  Returns float32 offsets [P+1], sources [nnz], weights [nnz]."""
    offsets, indices, weights = [0], [], []
    for _ in range(pixels):
        terms = int(torch.randint(1, MAX_TERMS + 1, (1,), generator=gen))
        indices += torch.randperm(sources, generator=gen)[:terms].tolist()
        weights += (0.1 + 0.9 * torch.rand(terms, generator=gen)).tolist()
        offsets.append(offsets[-1] + terms)
    return (torch.tensor(offsets, dtype=torch.float32), torch.tensor(indices, dtype=torch.float32),
            torch.tensor(weights, dtype=torch.float32))


def make_sample(gen, pixels):
    sample = {"tokens": randn(gen, TOKENS, D2D), "points": randn(gen, POINTS, D3D)}
    for name, count in (("rgb", TOKENS), ("xyz", POINTS)):
        offsets, sources, weights = blend_csr(gen, pixels, count)
        sample.update({f"{name}_offsets": offsets, f"{name}_sources": sources, f"{name}_weights": weights})
    return sample


def blend(sample, name, features):
    """Per-pixel features [P, D] = sum over a pixel's terms of weight * features[source]."""
    offsets = sample[f"{name}_offsets"].long()
    dense = torch.zeros(len(offsets) - 1, features.shape[0], dtype=features.dtype)
    for p in range(len(offsets) - 1):
        for t in range(offsets[p], offsets[p + 1]):
            dense[p, int(sample[f"{name}_sources"][t])] += sample[f"{name}_weights"][t].to(features.dtype)
    return dense @ features


# ------------------------------------------------------------------- loss


def cosine(x, y):
    """Row-wise x.y / max(|x| |y|, 1e-6) (the training loss's cosine), written out."""
    return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(COS_EPS)


def batch_loss(batch, m23, m32, dtype):
    """(1 - mean cos(m23(E2D), E3D)) + (1 - mean cos(m32(E3D), E2D)) over all pixels of the batch."""
    e2d = torch.cat([blend(s, "rgb", s["tokens"].to(dtype)) for s in batch])
    e3d = torch.cat([blend(s, "xyz", s["points"].to(dtype)) for s in batch])
    cos3d = cosine(m23(e2d), e3d).mean()
    cos2d = cosine(m32(e3d), e2d).mean()
    return (1 - cos3d) + (1 - cos2d), cos3d, cos2d


def named_parameters(m23, m32):
    return {f"{prefix}.{k}": v for (prefix, _, _), m in zip(MAPPERS, (m23, m32))
            for k, v in m.named_parameters()}


def train(batch, m23, m32, dtype, steps=2):
    """`steps` Adam steps of both mappers on `batch` in `dtype`; per step the metrics
    (before the update), the gradients and the parameters after the update."""
    m23, m32 = m23.to(dtype), m32.to(dtype)
    optimiser = torch.optim.Adam(list(m23.parameters()) + list(m32.parameters()), lr=LR, betas=BETAS,
                                 eps=ADAM_EPS)
    trace = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss, cos3d, cos2d = batch_loss(batch, m23, m32, dtype)
        loss.backward()
        grads = {k: v.grad.detach().clone() for k, v in named_parameters(m23, m32).items()}
        optimiser.step()
        after = {k: v.detach().clone() for k, v in named_parameters(m23, m32).items()}
        trace.append(dict(loss=loss.detach().reshape(1), cos3d=cos3d.detach().reshape(1),
                          cos2d=cos2d.detach().reshape(1), grads=grads, after=after))
    return trace


def max_relative_difference(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() / b[k].double().abs().max().item()
               for k in b)


# ----------------------------------------------------------------- fixture


def train_step_fixture():
    gen = generator("train_step_tiny")
    m23 = default_mapper(gen, D2D, D3D)
    m32 = default_mapper(gen, D3D, D2D)
    batch = [make_sample(gen, p) for p in PIXELS]
    before = {k: v.detach().clone() for k, v in named_parameters(m23, m32).items()}

    t64 = train(batch, copy.deepcopy(m23), copy.deepcopy(m32), torch.float64)
    t32 = train(batch, copy.deepcopy(m23), copy.deepcopy(m32), torch.float32)

    # Robustness: float32 must follow float64 closely, gradients must be far from 0.
    worst = max(max_relative_difference(a["after"], b["after"]) for a, b in zip(t32, t64))
    smallest = min((g.abs().min() / g.abs().max()).item() for step in t64 for g in step["grads"].values())
    nnz = sum(len(s["rgb_sources"]) + len(s["xyz_sources"]) for s in batch)
    print(f"train_step_tiny: {sum(PIXELS)} pixels, {nnz} blend terms, loss {t64[0]['loss'].item():.6f} -> "
          f"{t64[1]['loss'].item():.6f}; float32 vs float64 parameters after 1-2 steps: max rel diff "
          f"{worst:.1e}; smallest |grad| / max |grad| per tensor {smallest:.1e}")
    assert worst < 1e-6, "float32 training deviates from float64: a gradient is too close to 0"

    tensors = {}
    for i, s in enumerate(batch):
        tensors.update({f"s{i}.{k}": v for k, v in s.items()})
    tensors.update({f"before.{k}": v for k, v in before.items()})
    for step, suffix in zip(t64, ("", "2")):
        tensors.update({f"loss{suffix}": step["loss"], f"cos3d{suffix}": step["cos3d"],
                        f"cos2d{suffix}": step["cos2d"]})
        tensors.update({f"grad{suffix}.{k}": v for k, v in step["grads"].items()})
        tensors.update({f"after{suffix}.{k}": v for k, v in step["after"].items()})
    metadata = metadata_of(samples=len(PIXELS), pixels=PIXELS, tokens=TOKENS, points=POINTS,
                           d2d=D2D, d3d=D3D, hidden=(D2D + D3D) // 2, max_terms=MAX_TERMS,
                           lr=LR, betas=BETAS, adam_eps=ADAM_EPS, cos_eps=COS_EPS,
                           loss="(1 - mean cos(mapper_2d_to_3d(E2D), E3D)) + "
                                "(1 - mean cos(mapper_3d_to_2d(E3D), E2D)) over all pixels of the batch",
                           steps="after = one Adam step from before; after2 = a second step on the same "
                                 "batch; loss2/cos*2/grad2 are evaluated at after",
                           blend="pixel p = sum_{t in offsets[p]..offsets[p+1]} weights[t] * rows[sources[t]]")
    return tensors, metadata


def main():
    out = output_directory(__doc__)
    torch.set_num_threads(1)
    tensors, metadata = train_step_fixture()
    path = out / "train_step_tiny.safetensors"
    write(path, tensors, metadata)
    assert path.stat().st_size < 300_000, f"{path} is over 300 KB"


if __name__ == "__main__":
    main()
