"""Independent PyTorch reference of the CFM pipeline after preprocessing (extractors to score).

Plain functions and modules that compute what the CFM authors' code computes
(Point-MAE's `Group` = FPS then KNN, its mini-PointNet `Encoder` and
`TransformerEncoder` with the positional embedding added before every block,
M3DM's `interpolating_points`, `AvgPool2d(3, 1)` + `AdaptiveAvgPool2d(224)`,
the per-pixel mapper MLPs, the normalised-feature distances and the box blurs),
with these deterministic choices (cfm makes the same ones):

* FPS follows the pointnet2 CUDA kernel: float32 squared distances, start at
  index 0, initial distance 1e10, points with |p|^2 <= 1e-3 never picked,
  ties to the lowest index.
* KNN and the 3-NN interpolation use exact squared distances in float64,
  ascending, ties to the lower index (the authors' float32 `-2ab` formula and
  `topk` leave near-ties undefined).
* BatchNorm uses the frame's own batch statistics (`frame`, what the released
  code does) or the running statistics (`running`); no stochastic depth.

Everything except FPS/KNN runs in the dtype of its inputs and modules, so the
same code gives float64 golden fixtures and a float32 speed/parity reference.
"""

import math
import time
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

FEATURE_BLOCKS = {12: (3, 7, 11), 8: (1, 4, 7), 4: (1, 2, 3), 1: (0,)}
TIER_BLOCKS = {"tiny": 1, "small": 4, "medium": 8, "full": 12}
FPS_SKIP_NORM2 = 1e-3
FPS_INITIAL_DISTANCE = 1e10
INTERPOLATION_EPS = 1e-8
NORMALIZE_EPS = 1e-12

# Full-size Point-MAE encoder of the authors' checkpoint.
POINTMAE_FULL = dict(c1=128, c2=256, c3=512, dim=384, heads=6, depth=12, mlp_hidden=1536,
                     pos_hidden=128, eps=1e-5)


# ------------------------------------------------------------------ geometry


def fps(points, count, dtype=torch.float32):
    """Farthest point sampling as the pointnet2 CUDA kernel does it.

    points [N,3] -> long indices [count].  Squared distances in float32
    (dx*dx + dy*dy + dz*dz), running minimum over the chosen set starting from
    1e10; the first centre is index 0; a point with |p|^2 <= 1e-3 is never
    updated nor picked; the largest distance wins, ties to the lowest index.
    If no pickable point is left the kernel's default (index 0) is taken.
    `dtype=torch.float64` gives the same rule in float64 (to check that a
    cloud has no float32 near-ties).
    """
    p = points.detach().to(dtype)
    n = p.shape[0]
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    pickable = (x * x + y * y + z * z).double() > FPS_SKIP_NORM2
    temp = torch.full((n,), FPS_INITIAL_DISTANCE, dtype=dtype)
    temp[~pickable] = -1.0  # below the kernel's initial best (-1 is never > -1)
    indices = torch.zeros(count, dtype=torch.long)
    old = 0
    for j in range(1, count):
        dx, dy, dz = x - x[old], y - y[old], z - z[old]
        d = dx * dx + dy * dy + dz * dz
        temp = torch.where(pickable, torch.minimum(d, temp), temp)
        best = temp.max()
        old = int(torch.nonzero(temp == best)[0]) if best > -1 else 0
        indices[j] = old
    return indices


def squared_distances(a, b):
    """Exact squared Euclidean distances [len(a), len(b)] in float64: sum of (a-b)^2."""
    a, b = a.detach().double(), b.detach().double()
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def nearest(points, queries, k):
    """For each query, the k nearest points (float64 squared distance), ascending,
    ties to the lower index.  Returns (indices [Q,k] long, distances [Q,k] float64)."""
    out_idx, out_d = [], []
    chunk = max(1, 2_000_000 // max(1, points.shape[0]))
    for start in range(0, queries.shape[0], chunk):
        d = squared_distances(queries[start:start + chunk], points)
        d_sorted, order = torch.sort(d, dim=1, stable=True)
        out_idx.append(order[:, :k])
        out_d.append(d_sorted[:, :k])
    return torch.cat(out_idx), torch.cat(out_d)


def knn(points, centers, k):
    """Indices [M,k] of the k nearest points of each centre, ascending, ties to the lower index."""
    return nearest(points, centers, k)[0]


def group(points, groups, members):
    """Point-MAE's `Group`: FPS centres, their KNN groups and the neighbourhoods.

    Returns center_indices [G], centers [G,3], group_indices [G,k] and
    neighborhoods [G,k,3] = point - centre (in the dtype of `points`)."""
    center_indices = fps(points, groups)
    centers = points[center_indices]
    group_indices = knn(points, centers, members)
    neighborhoods = points[group_indices] - centers[:, None, :]
    return center_indices, centers, group_indices, neighborhoods


def interpolate3(points, centers, feats):
    """M3DM's `interpolating_points`: blend of the 3 nearest centres' features.

    w_i = 1 / (d_i^2 + 1e-8) with d_i^2 the exact squared distance, normalised
    to sum 1.  Returns (features [P,D], weights [P,3], indices [P,3])."""
    indices, d2 = nearest(centers, points, 3)
    recip = 1.0 / (d2 + INTERPOLATION_EPS)
    weights = (recip / recip.sum(1, keepdim=True)).to(feats.dtype)
    blended = (feats[indices] * weights[:, :, None]).sum(1)
    return blended, weights, indices


def align_xyz(fg_pixels, point_feats, size):
    """Scatter per-point features to their pixels of a [D,S,S] map (zeros elsewhere),
    3x3 average pool (stride 1, no padding), adaptive average pool back to SxS."""
    d = point_feats.shape[1]
    full = torch.zeros(d, size * size, dtype=point_feats.dtype)
    full[:, fg_pixels] = point_feats.transpose(0, 1)
    pooled = F.avg_pool2d(full.reshape(1, d, size, size), 3, stride=1)
    return F.adaptive_avg_pool2d(pooled, (size, size))[0]


# ------------------------------------------------------------------- Point-MAE


class Attention(nn.Module):
    """Multi-head self-attention; qkv rows are q, k, v, head h = slice h of each."""

    def __init__(self, dim, heads, qkv_bias=False):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, dim = x.shape
        hd = dim // self.heads
        q, k, v = self.qkv(x).reshape(n, 3, self.heads, hd).permute(1, 2, 0, 3)
        probs = torch.softmax(q @ k.transpose(1, 2) * hd ** -0.5, dim=-1)
        return self.proj((probs @ v).transpose(0, 1).reshape(n, dim))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block without layer scale or drop path."""

    def __init__(self, dim, heads, mlp_hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerEncoder(nn.Module):
    def __init__(self, dim, heads, depth, mlp_hidden, eps):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_hidden, eps) for _ in range(depth))


def batch_norm(x, bn, mode):
    """BatchNorm1d over [B, C, n]: `frame` = this input's statistics over B*n
    (biased variance, as in training mode), `running` = the stored statistics."""
    if mode == "frame":
        mean = x.mean(dim=(0, 2))
        var = ((x - mean[None, :, None]) ** 2).mean(dim=(0, 2))
    elif mode == "running":
        mean, var = bn.running_mean.to(x.dtype), bn.running_var.to(x.dtype)
    else:
        raise ValueError(f"unknown batchnorm mode {mode!r}")
    scale = bn.weight / torch.sqrt(var + bn.eps)
    return (x - mean[None, :, None]) * scale[None, :, None] + bn.bias[None, :, None]


class MiniPointNet(nn.Module):
    """Point-MAE's `Encoder`: per-group PointNet with a [global, per-point] concat."""

    def __init__(self, c1, c2, c3, dim, eps):
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, c1, 1), nn.BatchNorm1d(c1, eps=eps), nn.ReLU(),
                                        nn.Conv1d(c1, c2, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(2 * c2, c3, 1), nn.BatchNorm1d(c3, eps=eps),
                                         nn.ReLU(), nn.Conv1d(c3, dim, 1))

    @staticmethod
    def _stage(seq, x, mode):
        x = batch_norm(seq[0](x), seq[1], mode)
        return seq[3](F.relu(x))

    def forward(self, neighborhoods, mode="frame"):
        """[G,k,3] -> one token per group [G,dim]."""
        members = neighborhoods.shape[1]
        f = self._stage(self.first_conv, neighborhoods.transpose(1, 2), mode)   # [G,c2,k]
        g = f.max(dim=2, keepdim=True).values
        f = torch.cat([g.expand(-1, -1, members), f], dim=1)                     # [G,2c2,k]
        f = self._stage(self.second_conv, f, mode)                               # [G,dim,k]
        return f.max(dim=2).values


class PointMAEEncoder(nn.Module):
    """Point-MAE encoder (mini-PointNet, positional MLP, blocks, final norm), authors' key names."""

    def __init__(self, c1, c2, c3, dim, heads, depth, mlp_hidden, pos_hidden, eps=1e-5):
        super().__init__()
        self.encoder = MiniPointNet(c1, c2, c3, dim, eps)
        self.pos_embed = nn.Sequential(nn.Linear(3, pos_hidden), nn.GELU(), nn.Linear(pos_hidden, dim))
        self.blocks = TransformerEncoder(dim, heads, depth, mlp_hidden, eps)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def weights(self):
        """State dict without BatchNorm's `num_batches_tracked` (not part of the format)."""
        return {k: v for k, v in self.state_dict().items() if not k.endswith("num_batches_tracked")}

    def load_weights(self, tensors, prefix=""):
        """Load `prefix`+key tensors strictly (every key of `weights()`, nothing else)."""
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = self.weights()
        missing = sorted(set(expected) - set(own))
        unexpected = sorted(set(own) - set(expected))
        wrong = sorted(k for k in set(own) & set(expected) if own[k].shape != expected[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(f"Point-MAE weights: missing {missing[:5]}, unexpected {unexpected[:5]},"
                             f" misshaped {wrong[:5]}")
        with torch.no_grad():
            for k, v in expected.items():
                v.copy_(own[k])
        return self

    def forward(self, neighborhoods, centers, depth=None, batchnorm="frame", trace=None):
        """Features [G, len(FEATURE_BLOCKS[depth]) * dim] of one frame's groups.

        `trace`, if a dict, receives `tokens`, `pos`, `block.{i}` [G,dim]."""
        depth = len(self.blocks.blocks) if depth is None else depth
        fetch = FEATURE_BLOCKS[depth]
        x = self.encoder(neighborhoods, batchnorm)
        pos = self.pos_embed(centers)
        if trace is not None:
            trace["tokens"], trace["pos"] = x, pos
        outputs = []
        for i in range(depth):
            x = self.blocks.blocks[i](x + pos)
            if trace is not None:
                trace[f"block.{i}"] = x
            if i in fetch:
                outputs.append(self.norm(x))
        return torch.cat(outputs, dim=1)


# --------------------------------------------------------------------- mappers


class Mapper(nn.Module):
    """Per-pixel MLP: Linear(in,h) -> GELU -> Linear(h,h) -> GELU -> Linear(h,out), h=(in+out)//2."""

    def __init__(self, in_features, out_features):
        super().__init__()
        hidden = (in_features + out_features) // 2
        self.input = nn.Linear(in_features, hidden)
        self.projection = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.output(F.gelu(self.projection(F.gelu(self.input(x)))))


def map_pixels(mapper, feature_map, chunk=8192):
    """Apply a mapper to every pixel of a [D,S,S] map -> [out,S,S]."""
    d, h, w = feature_map.shape
    pixels = feature_map.reshape(d, h * w).transpose(0, 1)
    out = torch.cat([mapper(pixels[i:i + chunk]) for i in range(0, h * w, chunk)])
    return out.transpose(0, 1).reshape(-1, h, w).contiguous()


# ----------------------------------------------------------------------- score


def smooth(psi):
    """Five 5x5 then three 7x7 zero-padded box filters (count_include_pad) of [S,S]."""
    x = psi[None, None]
    for _ in range(5):
        x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True)
    for _ in range(3):
        x = F.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=True)
    return x[0, 0]


def score(e2d, e2d_hat, e3d, e3d_hat):
    """Anomaly map and image score from per-pixel maps [D,S,S].

    mask = pixels whose observed 3D feature sums to exactly 0 over channels;
    psi_m = ||normalize(hat) - normalize(observed)||, 0 on masked pixels;
    psi = psi2d * psi3d; anomaly_map = smooth(psi); score = max(anomaly_map) /
    sqrt(mean of the non-zero entries of anomaly_map) (the smoothed map, as the
    authors' `cos_comb[cos_comb != 0].mean()` after the blurs)."""
    mask = e3d.sum(dim=0) == 0

    def distance(a, b):
        return torch.linalg.vector_norm(F.normalize(b, dim=0, eps=NORMALIZE_EPS)
                                        - F.normalize(a, dim=0, eps=NORMALIZE_EPS), dim=0)

    psi2d = distance(e2d, e2d_hat).masked_fill(mask, 0)
    psi3d = distance(e3d, e3d_hat).masked_fill(mask, 0)
    psi = (psi2d * psi3d).masked_fill(mask, 0)
    smoothed = smooth(psi)
    value = smoothed.max() / torch.sqrt(smoothed[smoothed != 0].mean())
    return {"mask": mask, "psi2d": psi2d, "psi3d": psi3d, "psi": psi, "anomaly_map": smoothed,
            "score": value.reshape(1)}


# ---------------------------------------------------------------- 2D extractor


def vit_features(vit, image, blocks):
    """timm VisionTransformer pruned to its first `blocks` blocks: embed, blocks,
    final norm, cls dropped -> [C, grid, grid]."""
    x = vit._pos_embed(vit.patch_embed(image[None]))
    for block in vit.blocks[:blocks]:
        x = block(x)
    tokens = vit.norm(x)[0, 1:]
    grid = int(round(math.sqrt(tokens.shape[0])))
    return tokens.transpose(0, 1).reshape(-1, grid, grid).contiguous()


def upsample(features, size):
    """Bilinear (align_corners=False) resize of [C,h,w] to [C,size,size]."""
    return F.interpolate(features[None], size=(size, size), mode="bilinear", align_corners=False)[0]


# -------------------------------------------------------------------- pipeline


class StageTimer:
    """Wall-clock seconds per named stage (accumulated)."""

    def __init__(self):
        self.seconds = {}

    @contextmanager
    def __call__(self, name):
        start = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def tier_depths(tier):
    """(ViT blocks, Point-MAE blocks) of a tier name or an explicit pair."""
    if isinstance(tier, str):
        return TIER_BLOCKS[tier], TIER_BLOCKS[tier]
    return tuple(tier)


def foreground_points(xyz):
    """Organized [S,S,3] cloud -> (row-major pixel indices of points with all three
    coordinates non-zero, their coordinates [P,3], the [S,S] foreground mask)."""
    s = xyz.shape[0]
    fg = (xyz != 0).all(dim=2)
    pixels = torch.nonzero(fg.reshape(-1))[:, 0]
    return pixels, xyz.reshape(s * s, 3)[pixels], fg


def full_pipeline(rgb, xyz, vit, pointmae, mapper_2d3d, mapper_3d2d, tier, batchnorm="frame",
                  groups=1024, members=128, timer=None):
    """The whole CFM forward on one frame.

    rgb [3,S,S] (normalised), xyz [S,S,3] organized after background removal;
    `tier` is a name (tiny/small/medium/full) or (vit_blocks, pointmae_blocks).
    Returns every intermediate under the names of `cfm extract` / `cfm infer --dump`:
    rgb_features [C,g,g], rgb_map [C,S,S], center_indices [G], centers [G,3],
    groups [G,k], xyz_features [D3D,G], point_features [P,D3D], xyz_map [D3D,S,S],
    foreground [S,S], psi2d, psi3d, psi (before smoothing), anomaly_map [S,S], score [1].
    Mappers may be None (then no psi/anomaly_map/score)."""
    timer = timer or StageTimer()
    vit_blocks, pm_blocks = tier_depths(tier)
    size = rgb.shape[-1]
    out = {}
    with torch.no_grad():
        with timer("vit"):
            out["rgb_features"] = vit_features(vit, rgb, vit_blocks)
        with timer("upsample"):
            out["rgb_map"] = upsample(out["rgb_features"], size)
        with timer("foreground"):
            pixels, points, fg = foreground_points(xyz)
            out["foreground"] = fg.to(rgb.dtype)
        with timer("fps"):
            center_indices = fps(points, groups)
            centers = points[center_indices]
        with timer("knn"):
            group_indices = knn(points, centers, members)
            neighborhoods = points[group_indices] - centers[:, None, :]
        with timer("pointmae"):
            features = pointmae(neighborhoods, centers, pm_blocks, batchnorm)
        with timer("interpolate"):
            point_features, _, _ = interpolate3(points, centers, features)
        with timer("align"):
            xyz_map = align_xyz(pixels, point_features, size)
        out.update(center_indices=center_indices, centers=centers, groups=group_indices,
                   xyz_features=features.transpose(0, 1).contiguous(),
                   point_features=point_features, xyz_map=xyz_map)
        if mapper_2d3d is not None and mapper_3d2d is not None:
            with timer("mappers"):
                e3d_hat = map_pixels(mapper_2d3d, out["rgb_map"])
                e2d_hat = map_pixels(mapper_3d2d, xyz_map)
            with timer("score"):
                s = score(out["rgb_map"], e2d_hat, xyz_map, e3d_hat)
            out.update(psi2d=s["psi2d"], psi3d=s["psi3d"], psi=s["psi"],
                       anomaly_map=s["anomaly_map"], score=s["score"])
    out["timings"] = dict(timer.seconds)
    return out
