#!/usr/bin/python3
"""Throughput of the authors' PyTorch CPU training step of the crossmodal mappers.

For each requested tier, at the real mapper sizes (tiny 768 <-> 384 with
hidden 576, the other tiers 768 <-> 1152 with hidden 960), times one training step as the
authors' training loop runs it: both mappers on every pixel of dense per-pixel float32
feature tensors, the masked cosine loss (mask = 3D feature sums to 0;
`torch.nn.CosineSimilarity(dim=-1, eps=1e-6)` as in the authors' code), backward,
`torch.optim.Adam(lr=1e-3)` step over both mappers -- for a batch of `--samples` samples of
`--pixels` unmasked pixels each ("full": every unmasked pixel), and with unbiased
subsampling of `--subsample` random unmasked pixels per sample per step ("subsampled";
the per-step random draw and gather are timed too).  With `--frame-pixels N` (e.g. 50176 =
224x224) the full mode runs the mappers on N pixels per sample of which `--pixels` are
unmasked, as the authors do on whole frames.

Features are random (the values do not change the cost).  Prints JSON: per tier and mode the
median and all step times, the median process CPU time (cores_used = CPU / wall
shows contention on a shared machine), pixels per step, pixels/s and GFLOP/s (multiply-adds of the three
linear layers of both mappers, forward x 3 for forward + backward).
"""

import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn as nn

from cfm_reference import Mapper

TIERS = {"tiny": 384, "small": 1152, "base": 1152, "large": 1152}
D2D = 768


def flop_per_pixel(d2d, d3d):
    """2 x multiply-adds of both mappers' linear layers, x 3 for forward + backward."""
    h = (d2d + d3d) // 2
    forward = 2 * 2 * (d2d * h + h * h + h * d3d)
    return 3 * forward


def dense_features(gen, samples, pixels, unmasked, d3d):
    """[samples * pixels, 768], [samples * pixels, d3d] float32; the first `unmasked` pixels
    of each sample have non-zero 3D features, the rest are zero (masked)."""
    e2d = torch.randn(samples * pixels, D2D, generator=gen)
    e3d = torch.randn(samples, pixels, d3d, generator=gen)
    e3d[:, unmasked:] = 0
    return e2d, e3d.reshape(samples * pixels, d3d)


def step_fn(m23, m32, optimiser, metric):
    def step(rgb_feat, xyz_feat):
        # The authors' loop: mappers on all pixels, mask from the 3D features, two cosine losses.
        rgb_pred = m23(rgb_feat)
        xyz_pred = m32(xyz_feat)
        mask = xyz_feat.sum(dim=-1) == 0
        loss_3d2d = 1 - metric(xyz_pred[~mask], rgb_feat[~mask]).mean()
        loss_2d3d = 1 - metric(rgb_pred[~mask], xyz_feat[~mask]).mean()
        loss = loss_3d2d + loss_2d3d
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return int((~mask).sum())
    return step


def time_steps(run, warmup, repeats):
    """Calls `run()` warmup + repeats times; returns the timed (wall, process CPU) durations
    and run()'s last value."""
    value = None
    for _ in range(warmup):
        value = run()
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        value = run()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    return times, value


def bench_tier(tier, args):
    d3d = TIERS[tier]
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    m23, m32 = Mapper(D2D, d3d), Mapper(d3d, D2D)
    optimiser = torch.optim.Adam(list(m23.parameters()) + list(m32.parameters()), lr=1e-3)
    step = step_fn(m23, m32, optimiser, nn.CosineSimilarity(dim=-1, eps=1e-6))
    per_pixel = flop_per_pixel(D2D, d3d)
    results = []

    frame = max(args.frame_pixels, args.pixels)
    e2d, e3d = dense_features(gen, args.samples, frame, args.pixels, d3d)
    if "full" in args.modes:
        times, unmasked = time_steps(lambda: step(e2d, e3d), args.warmup, args.repeats)
        assert unmasked == args.samples * args.pixels
        results.append(summary(tier, d3d, "full", frame, args, times, per_pixel * args.samples * frame))

    if "subsampled" in args.modes:
        # Pools of the unmasked pixels only; each step draws `subsample` per sample without replacement.
        keep = torch.cat([torch.arange(s * frame, s * frame + args.pixels) for s in range(args.samples)])
        pool2d, pool3d = e2d[keep].contiguous(), e3d[keep].contiguous()
        del e2d, e3d

        def subsampled():
            picks = torch.cat([s * args.pixels + torch.randperm(args.pixels, generator=gen)[:args.subsample]
                               for s in range(args.samples)])
            return step(pool2d.index_select(0, picks), pool3d.index_select(0, picks))

        times, unmasked = time_steps(subsampled, args.warmup, args.repeats)
        assert unmasked == args.samples * args.subsample
        results.append(summary(tier, d3d, "subsampled", args.subsample, args, times,
                               per_pixel * args.samples * args.subsample))
    return results


def summary(tier, d3d, mode, mapped_per_sample, args, times, flop):
    cpu = statistics.median(c for _, c in times)
    times = [t for t, _ in times]
    median = statistics.median(times)
    unmasked = args.samples * (args.pixels if mode == "full" else args.subsample)
    return {"tier": tier, "d2d": D2D, "d3d": d3d, "hidden": (D2D + d3d) // 2, "mode": mode,
            "samples": args.samples, "mapped_pixels_per_sample": mapped_per_sample,
            "unmasked_pixels_per_step": unmasked, "median_s": round(median, 4),
            "times_s": [round(t, 4) for t in times],
            "median_cpu_s": round(cpu, 4), "cores_used": round(cpu / median, 2), "pixels_per_s": round(unmasked / median, 1),
            "gflop_per_step": round(flop / 1e9, 1), "gflop_per_s": round(flop / 1e9 / median, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", default="tiny,small",
                        help="comma-separated tiers (default tiny,small; base and large have small's mapper sizes)")
    parser.add_argument("--modes", default="full,subsampled", help="full, subsampled or both (default)")
    parser.add_argument("--samples", type=int, default=4, help="samples per batch (default 4)")
    parser.add_argument("--pixels", type=int, default=21000, help="unmasked pixels per sample (default 21000)")
    parser.add_argument("--subsample", type=int, default=2048, help="pixels per sample when subsampling (default 2048)")
    parser.add_argument("--frame-pixels", type=int, default=0,
                        help="full mode: run the mappers on this many pixels per sample (e.g. 50176), "
                             "the ones past --pixels masked (default: only the unmasked pixels)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.modes = args.modes.split(",")
    torch.set_num_threads(args.threads)
    results = []
    for tier in args.tiers.split(","):
        results += bench_tier(tier, args)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                      "load_average_after": [round(x, 2) for x in os.getloadavg()],
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
