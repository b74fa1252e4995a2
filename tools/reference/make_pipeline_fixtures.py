#!/usr/bin/python3
"""Generate the golden fixtures of the 3D and scoring half of the pipeline.

Writes five files (default directory: Tests/Fixtures of the repository):

* ``pointmae_tiny.safetensors`` -- a tiny Point-MAE encoder, a point cloud and
  the trace of grouping (FPS, KNN), mini-PointNet (frame and running
  BatchNorm), positional embedding, blocks and tier features.
* ``align_tiny.safetensors`` -- 3-NN interpolation of centre features to
  foreground points and their alignment to a 32x32 pixel map.
* ``mapper_tiny.safetensors`` -- a 24 -> 16 mapper MLP and one batch.
* ``score_tiny.safetensors`` -- masked psi maps, smoothing and image score.
* ``pipeline_tiny.safetensors`` -- the whole pipeline at 32x32 with a tiny ViT,
  a tiny Point-MAE and tiny mappers, outputs under the `cfm infer --dump` names.

Same conventions as make_fixtures.py: one seeded generator per fixture,
float32 weights and inputs, outputs computed in float64 from them (FPS uses
float32 distances like the CUDA kernel; each cloud is checked to give the same
centres in float64) and rounded once, metadata keys sorted.
"""


import torch
import torch.nn as nn
import torch.nn.functional as F

import cfm_reference as ref
from make_fixtures import VIT_CONFIG, build_tiny_vit, generator, randn, randomise_vit, write, output_directory

POINTMAE_TINY = dict(c1=8, c2=16, c3=32, dim=16, heads=2, depth=4, mlp_hidden=64, pos_hidden=8, eps=1e-5)
GROUPS, MEMBERS = 16, 8
PIPELINE_SIZE = 32
PIPELINE_D3D = 3 * POINTMAE_TINY["dim"]  # feature blocks {1,2,3} of depth 4


# ----------------------------------------------------------------- helpers


def metadata_of(**values):
    """String metadata (the safetensors format stores strings only)."""
    return {k: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)
            for k, v in values.items()}


def check_fps_robust(points, count):
    """The float32 FPS of `points` must equal the float64 one (no near-ties)."""
    f32 = ref.fps(points, count)
    assert torch.equal(f32, ref.fps(points, count, dtype=torch.float64)), "FPS has float32 near-ties"
    return f32


def knn_margin(points, centers, k):
    """Smallest relative gap between the k-th and (k+1)-th squared distance over the
    centres, ignoring exact ties (those are resolved by index)."""
    d, _ = torch.sort(ref.squared_distances(centers, points), dim=1)
    kth, nxt = d[:, k - 1], d[:, k]
    gaps = ((nxt - kth) / nxt.clamp_min(1e-30))[nxt != kth]
    return gaps.min().item() if len(gaps) else float("inf")


def randomise_linear_layers(model, gen):
    """Linear/Conv1d weights ~ N(0, 0.2 sqrt(32/fan_in)), biases ~ N(0, 0.2);
    LayerNorm/BatchNorm weights 1 + N(0, 0.2), biases N(0, 0.2)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
                module.weight.copy_(1 + randn(gen, *module.weight.shape, std=0.2))
                module.bias.copy_(randn(gen, *module.bias.shape, std=0.2))
            elif isinstance(module, (nn.Linear, nn.Conv1d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(randn(gen, *module.weight.shape, std=0.2 * (32 / fan_in) ** 0.5))
                if module.bias is not None:
                    module.bias.copy_(randn(gen, *module.bias.shape, std=0.2))


def randomise_running_stats(model, gen, neighborhoods):
    """BatchNorm running statistics near the batch statistics of `neighborhoods`:
    mean + 0.3 std N(0,1), variance x exp(N(0, 0.3)) (always positive).  Drawn
    in order, the second BatchNorm seeing the first one's running-mode output."""
    enc = model.encoder
    with torch.no_grad():
        x = neighborhoods.transpose(1, 2)
        for seq, is_first in ((enc.first_conv, True), (enc.second_conv, False)):
            if not is_first:
                f = enc.first_conv[3](F.relu(ref.batch_norm(enc.first_conv[0](x), enc.first_conv[1],
                                                            "running")))
                x = torch.cat([f.max(dim=2, keepdim=True).values.expand(-1, -1, f.shape[2]), f], dim=1)
            h = seq[0](x)
            mean = h.mean(dim=(0, 2))
            var = h.var(dim=(0, 2), unbiased=False)
            bn = seq[1]
            bn.running_mean.copy_(mean + 0.3 * var.sqrt() * randn(gen, *mean.shape))
            bn.running_var.copy_(var * torch.exp(randn(gen, *var.shape, std=0.3)))
            assert (bn.running_var > 0).all()


def build_pointmae(gen, neighborhoods):
    """A tiny PointMAEEncoder with every parameter and running statistic randomised."""
    model = ref.PointMAEEncoder(**POINTMAE_TINY)
    randomise_linear_layers(model, gen)
    randomise_running_stats(model, gen, neighborhoods)
    return model.eval()


def build_mapper(gen, in_features, out_features):
    """A Mapper with N(0, 1/sqrt(fan_in)) weights and N(0, 0.2) biases."""
    mapper = ref.Mapper(in_features, out_features)
    with torch.no_grad():
        for layer in (mapper.input, mapper.projection, mapper.output):
            layer.weight.copy_(randn(gen, *layer.weight.shape, std=layer.in_features ** -0.5))
            layer.bias.copy_(randn(gen, *layer.bias.shape, std=0.2))
    return mapper.eval()


def prefixed(prefix, tensors):
    return {prefix + k: v for k, v in tensors.items()}


def smooth_noise(gen, channels, size, octaves=((4, 0.6), (8, 0.3), (16, 0.1))):
    """[channels,size,size] sum of bicubic-upsampled uniform noise octaves, in about [0,1]."""
    out = torch.zeros(channels, size, size)
    for cells, weight in octaves:
        noise = torch.rand(1, channels, cells, cells, generator=gen)
        out += weight * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)[0]
    return out


def normalise_rgb(image):
    """[3,S,S] in [0,1] -> ImageNet-normalised."""
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return ((image.clamp(0, 1) - mean) / std).contiguous()


def object_xyz(gen, size, focal, semi_axes, distance=0.5, noise=2e-4):
    """An organized [S,S,3] cloud of an object whose plane was removed: a domed,
    bumpy superellipse-shaped part seen by a pinhole camera (principal point at
    the image centre, so no pixel has x or y exactly 0); zeros outside it."""
    v, u = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5,
                          torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    cu = cv = size / 2
    a, b = semi_axes
    r = ((((u - cu) / a).abs() ** 2.5 + ((v - cv) / b).abs() ** 2.5) ** (1 / 2.5))
    inside = r < 1
    bumps = smooth_noise(gen, 1, size)[0].double() - 0.5
    depth = distance - 0.03 * (1 - r.clamp(max=1) ** 2) - 0.006 * bumps
    depth = depth + noise * torch.randn(size, size, generator=gen).double()
    xyz = torch.stack([(u - cu) * depth / focal, (v - cv) * depth / focal, depth], dim=-1)
    xyz[~inside] = 0
    return xyz.to(torch.float32).contiguous()


# --------------------------------------------------------------- Point-MAE


def pointmae_points(gen):
    """~300 points: a noisy curved patch ~0.5 m away, two points within 3.2 cm of the
    origin (|p|^2 <= 1e-3, never FPS centres), one just outside (|p|^2 ~ 1.3e-3, picked
    at once), and exact duplicates of points 0, 40, 41 and 150."""
    n = 293
    xy = (torch.rand(n, 2, generator=gen) - 0.5) * 0.2
    z = 0.5 + 0.8 * (xy ** 2).sum(1) - 0.3 * xy[:, 0] * xy[:, 1] + 5e-4 * randn(gen, n)
    surface = torch.cat([xy + torch.tensor([0.03, -0.02]), z[:, None]], dim=1)
    near = torch.tensor([[0.010, -0.020, 0.015],     # |p|^2 = 7.25e-4
                         [0.018, 0.018, 0.018],      # |p|^2 = 9.72e-4
                         [-0.020, 0.020, 0.0245]])   # |p|^2 = 1.40e-3 (pickable)
    points = torch.cat([surface[:57], near[:1], surface[57:200], near[1:2], surface[200:],
                        near[2:], surface[[0, 40, 41, 150]]])
    return points.contiguous()


def pointmae_fixture():
    gen = generator("pointmae_tiny")
    points = pointmae_points(gen)
    center_indices = check_fps_robust(points, GROUPS)
    pts64 = points.double()
    _, centers, group_indices, neighborhoods = ref.group(pts64, GROUPS, MEMBERS)
    assert torch.equal(ref.group(pts64, GROUPS, MEMBERS)[0], center_indices)
    print(f"pointmae_tiny: {len(points)} points, KNN k-th/(k+1)-th min relative gap "
          f"{knn_margin(points, centers, MEMBERS):.2e}")
    model = build_pointmae(gen, neighborhoods.float())
    weights = {k: v.clone() for k, v in model.weights().items()}
    m64 = model.double()
    trace = {}
    with torch.no_grad():
        feats4 = m64(neighborhoods, centers, 4, "frame", trace)
        feats1 = m64(neighborhoods, centers, 1, "frame")
        feats4_running = m64(neighborhoods, centers, 4, "running")
        tokens_running = m64.encoder(neighborhoods, "running")
    tensors = {**weights, "points": points,
               "trace.fps_indices": center_indices, "trace.knn_indices": group_indices,
               "trace.centers": centers, "trace.neighborhoods": neighborhoods,
               "trace.tokens.frame": trace["tokens"], "trace.tokens.running": tokens_running,
               "trace.pos": trace["pos"],
               **{f"trace.block.{i}": trace[f"block.{i}"] for i in range(4)},
               "trace.features.1": feats1, "trace.features.4": feats4,
               "trace.features.4.running": feats4_running}
    metadata = metadata_of(**POINTMAE_TINY, bn_eps=1e-5, ln_eps=1e-5, groups=GROUPS, members=MEMBERS,
                           points=len(points), feature_blocks_1=ref.FEATURE_BLOCKS[1],
                           feature_blocks_4=ref.FEATURE_BLOCKS[4],
                           fps="start 0, float32 squared distances, |p|^2 <= 1e-3 never picked, "
                               "ties to lowest index",
                           knn="float64 squared distances, ascending, ties to lower index")
    return tensors, metadata


# ------------------------------------------------------------------- align


def align_fixture():
    gen = generator("align_tiny")
    size, count, dim = 32, 300, 8
    pixels = torch.sort(torch.randperm(size * size, generator=gen)[:count]).values
    v, u = (pixels // size).double() + 0.5, (pixels % size).double() + 0.5
    depth = 0.45 + 0.05 * torch.sin(u / 5) * torch.cos(v / 7) + 1e-3 * randn(gen, count).double()
    points = torch.stack([(u - 16) * depth / 40, (v - 16) * depth / 40, depth], dim=1).float()
    center_indices = check_fps_robust(points, 16)
    centers = points[center_indices]
    features = randn(gen, 16, dim)
    with torch.no_grad():
        blended, weights, indices = ref.interpolate3(points.double(), centers.double(), features.double())
        xyz_map = ref.align_xyz(pixels, blended, size)
    tensors = {"align.pixels": pixels, "align.points": points, "align.centers": centers,
               "align.features": features, "align.weights": weights, "align.indices": indices,
               "align.point_features": blended, "align.xyz_map": xyz_map}
    metadata = metadata_of(size=size, points=count, centers=16, dim=dim, eps=ref.INTERPOLATION_EPS,
                           centers_are="points[fps(points, 16)], so 16 points sit on a centre")
    return tensors, metadata


# ------------------------------------------------------------------ mapper


def mapper_fixture():
    gen = generator("mapper_tiny")
    mapper = build_mapper(gen, 24, 16)
    x = randn(gen, 10, 24)
    with torch.no_grad():
        y = mapper.double()(x.double())
    weights = {k: v.float() for k, v in mapper.state_dict().items()}
    return {**weights, "x": x, "y": y}, metadata_of(in_features=24, hidden=20, out_features=16)


# ------------------------------------------------------------------- score


def score_fixture():
    """Foreground = a blob in the upper-left part, so that the smoothed map has exact
    zeros (more than 19 pixels from any unmasked pixel, in rows/cols 30-31) and the
    'mean of the non-zero' differs from the mean of all pixels.  Pixel (5,5) holds a
    3D feature that is not all-zero but sums to exactly 0: masked by the reference
    rule.  An anomaly (larger prediction error) sits around (8,6)."""
    gen = generator("score_tiny")
    size = 32
    v, u = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    fg = ((u - 6) ** 2 / 16.0 + (v - 6) ** 2 / 20.0 <= 1)
    e2d = randn(gen, 12, size, size)
    e3d = randn(gen, 8, size, size) * fg
    e3d[:, 5, 5] = torch.tensor([0.5, -0.25, -0.25, 0, 0, 0, 0, 0])
    anomaly = (((u - 6) ** 2 + (v - 8) ** 2) <= 2).float() * 2.0 + 0.3
    e2d_hat = e2d + anomaly * randn(gen, 12, size, size)
    e3d_hat = e3d + anomaly * randn(gen, 8, size, size)  # non-zero on masked pixels too
    with torch.no_grad():
        s = ref.score(e2d.double(), e2d_hat.double(), e3d.double(), e3d_hat.double())
    smoothed = s["anomaly_map"]
    zeros = int((smoothed == 0).sum())
    assert zeros > 0 and bool(s["mask"][5, 5]) and not bool((e3d[:, 5, 5] == 0).all())
    print(f"score_tiny: {int((~s['mask']).sum())} unmasked pixels, {zeros} exact zeros after smoothing")
    tensors = {"e2d": e2d, "e2d_hat": e2d_hat, "e3d": e3d, "e3d_hat": e3d_hat,
               "mask": s["mask"], "psi2d": s["psi2d"], "psi3d": s["psi3d"], "psi": s["psi"],
               "anomaly_map": smoothed, "score": s["score"]}
    metadata = metadata_of(size=size, mask="e3d sums to exactly 0 over channels",
                           score="max(anomaly_map) / sqrt(mean of non-zero anomaly_map)",
                           smoothing="5 x box5 (pad 2, /25), then 3 x box7 (pad 3, /49)")
    return tensors, metadata


# ---------------------------------------------------------------- pipeline


def pipeline_fixture():
    gen = generator("pipeline_tiny")
    size = PIPELINE_SIZE
    vit = build_tiny_vit()
    randomise_vit(vit, gen)
    rgb = normalise_rgb(smooth_noise(gen, 3, size))
    xyz = object_xyz(gen, size, focal=60.0, semi_axes=(13.0, 10.5))
    pixels, points, fg = ref.foreground_points(xyz)
    check_fps_robust(points, GROUPS)
    _, centers, _, neighborhoods = ref.group(points, GROUPS, MEMBERS)
    pointmae = build_pointmae(gen, neighborhoods)
    dim2d = VIT_CONFIG["dim"]
    mapper_23 = build_mapper(gen, dim2d, PIPELINE_D3D)
    mapper_32 = build_mapper(gen, PIPELINE_D3D, dim2d)
    weights = {**prefixed("vit.", vit.state_dict()), **prefixed("pointmae.", pointmae.weights()),
               **prefixed("mapper_2d_to_3d.", mapper_23.state_dict()),
               **prefixed("mapper_3d_to_2d.", mapper_32.state_dict())}
    weights = {k: v.clone().float() for k, v in weights.items()}
    out = ref.full_pipeline(rgb.double(), xyz.double(), vit.double(), pointmae.double(),
                            mapper_23.double(), mapper_32.double(),
                            tier=(VIT_CONFIG["depth"], POINTMAE_TINY["depth"]), batchnorm="frame",
                            groups=GROUPS, members=MEMBERS)
    print(f"pipeline_tiny: {len(points)} foreground points ({len(points) / size ** 2:.0%}), "
          f"KNN min relative gap {knn_margin(points, centers, MEMBERS):.2e}, score {out['score'].item():.4f}")
    names = ("rgb_features", "rgb_map", "center_indices", "centers", "groups", "xyz_features",
             "xyz_map", "foreground", "psi2d", "psi3d", "anomaly_map", "score")
    tensors = {**weights, "rgb_input": rgb, "xyz_input": xyz, **{k: out[k] for k in names}}
    metadata = metadata_of(size=size, vit_image_size=VIT_CONFIG["image_size"],
                           vit_patch_size=VIT_CONFIG["patch_size"], vit_dim=dim2d,
                           vit_heads=VIT_CONFIG["heads"], vit_depth=VIT_CONFIG["depth"],
                           vit_mlp_hidden=VIT_CONFIG["mlp_hidden"], vit_eps=VIT_CONFIG["eps"],
                           vit_blocks=VIT_CONFIG["depth"],
                           **{f"pointmae_{k}": v for k, v in POINTMAE_TINY.items()},
                           pointmae_blocks=POINTMAE_TINY["depth"],
                           pointmae_feature_blocks=ref.FEATURE_BLOCKS[POINTMAE_TINY["depth"]],
                           groups=GROUPS, members=MEMBERS, d3d=PIPELINE_D3D,
                           mapper_hidden=(dim2d + PIPELINE_D3D) // 2, batchnorm="frame",
                           foreground_points=len(points))
    return tensors, metadata


def main():
    out = output_directory(__doc__)
    for name, build in (("pointmae_tiny", pointmae_fixture), ("align_tiny", align_fixture),
                        ("mapper_tiny", mapper_fixture), ("score_tiny", score_fixture),
                        ("pipeline_tiny", pipeline_fixture)):
        tensors, metadata = build()
        path = out / f"{name}.safetensors"
        write(path, tensors, metadata)
        assert path.stat().st_size < 1_000_000, f"{path} is over 1 MB"


if __name__ == "__main__":
    main()
