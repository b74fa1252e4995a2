"""Times ONNX Runtime and OpenVINO on the ONNX files of export_peers.py; builds the report.

Runs in the virtual environment `scripts/bench-peers.sh` creates (numpy, onnxruntime,
openvino, safetensors from PyPI) - never at cfm's run time, never in Debian's interpreter.

`time`: for one tier, each runtime (ONNX Runtime fp32; OpenVINO fp32 and, when the CPU has
native bf16, bf16 through INFERENCE_PRECISION_HINT) on --threads threads runs the 2D extractor
(`vit_TIER.onnx` on `input.safetensors`) and the map stage (`map_TIER.onnx` on its seeded
inputs): --warmup runs, then --runs timed runs, median ms. Each output is compared with
PyTorch's (`*.reference.safetensors`) and the extractor's tokens also with cfm's own
features (`cfm extract` output, --cfm-features): max |diff| / max |reference| and cosine of
the flattened tensors. One JSON object to --out.

`report`: the cfm bench JSONs, the `time` JSONs (one of each per tier and round) and the load
averages -> a markdown table (ms, GFLOP/s from cfm's analytic FLOP count, ratios cfm / peer;
over several rounds the median of the rounds' medians and of their ratios) on stdout and one
JSON file;
exit status 1 if any fp32 result differs from its reference by more than --tolerance or a
bf16 one by more than --bf16-tolerance.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

VIT_OUTPUTS = ("tokens",)
MAP_INPUTS = ("tokens", "centres", "hidden_rgb", "hidden_xyz")
MAP_OUTPUTS = ("token_hidden", "centre_hidden", "mapped_xyz", "mapped_rgb")
GRID, DIM = 28, 768


# ------------------------------------------------------------------ runtimes


def onnxruntime_session(path, threads):
    """An ONNX Runtime CPU session on `threads` intra-op threads; returns run(feeds) -> {name: array}."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def openvino_has_bf16():
    import openvino as ov
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def openvino_session(path, threads, precision):
    """An OpenVINO CPU model compiled for latency on `threads` threads with the given
    inference precision (`f32` or `bf16`); returns run(feeds) -> {name: array}."""
    import openvino as ov
    core, wanted = ov.Core(), {"f32": ov.Type.f32, "bf16": ov.Type.bf16}[precision]
    model = core.read_model(str(path))
    names = [o.get_any_name() for o in model.outputs]
    compiled = core.compile_model(model, "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": wanted})
    actual = compiled.get_property("INFERENCE_PRECISION_HINT")
    if actual != wanted:
        raise RuntimeError(f"OpenVINO compiled {path.name} with precision {actual}, not {precision}")
    request = compiled.create_infer_request()

    def run(feeds):
        request.infer(feeds)
        return {name: request.get_output_tensor(i).data.copy() for i, name in enumerate(names)}
    return run


def peers(threads, bf16):
    """(label, precision, session factory) of every peer configuration."""
    rows = [("onnxruntime", "fp32", lambda p: onnxruntime_session(p, threads)),
            ("openvino", "fp32", lambda p: openvino_session(p, threads, "f32"))]
    if bf16:
        rows.append(("openvino", "bf16", lambda p: openvino_session(p, threads, "bf16")))
    return rows


# ------------------------------------------------------------------ measuring


def median_ms(run, feeds, warmup, runs):
    """Median and every timed run's milliseconds, after `warmup` untimed runs; the last outputs."""
    for _ in range(warmup):
        outputs = run(feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        outputs = run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), times, outputs


def agreement(got, reference):
    """max |got - ref| / max |ref| and the cosine of the flattened tensors (float64)."""
    got, reference = np.asarray(got, np.float64).ravel(), np.asarray(reference, np.float64).ravel()
    if got.shape != reference.shape:
        raise ValueError(f"shape {got.shape} against {reference.shape}")
    ratio = float(np.abs(got - reference).max() / np.abs(reference).max())
    cosine = float(got @ reference / (np.linalg.norm(got) * np.linalg.norm(reference)))
    return {"max_abs_diff_over_max_abs": ratio, "cosine": cosine}


def worst(agreements):
    """The worst ratio and cosine over several outputs."""
    return {"max_abs_diff_over_max_abs": max(a["max_abs_diff_over_max_abs"] for a in agreements),
            "cosine": min(a["cosine"] for a in agreements)}


def cfm_tokens(path):
    """cfm's `rgb_features` [768,28,28] as tokens [784,768]."""
    return load_file(str(path))["rgb_features"].reshape(DIM, GRID * GRID).T


def time_tier(args):
    """Every peer on both models of one tier -> the `time` JSON object."""
    image = load_file(str(args.dir / "input.safetensors"))["rgb_input"][None]
    vit_reference = load_file(str(args.dir / f"vit_{args.tier}.reference.safetensors"))["tokens"]
    map_inputs = load_file(str(args.dir / f"map_{args.tier}.inputs.safetensors"))
    map_reference = load_file(str(args.dir / f"map_{args.tier}.reference.safetensors"))
    cfm = {precision: cfm_tokens(path) for precision, path in
           (("fp32", args.cfm_features), ("bf16", args.cfm_features_bf16)) if path}
    result = {"tier": args.tier, "threads": args.threads, "warmup": args.warmup, "runs": args.runs,
              "pixels": int(map_inputs["hidden_rgb"].shape[0]), "peers": [],
              "cfm_vs_torch": {p: agreement(t, vit_reference) for p, t in cfm.items()},
              "cfm_vs_cfm_fp32": {"bf16": agreement(cfm["bf16"], cfm["fp32"])} if "bf16" in cfm and "fp32" in cfm else {}}
    bf16 = openvino_has_bf16()
    if not bf16:
        result["note"] = "the CPU has no native bf16 (OpenVINO OPTIMIZATION_CAPABILITIES): no bf16 peer"
    for runtime, precision, session in peers(args.threads, bf16):
        row = {"runtime": runtime, "precision": precision}
        run = session(args.dir / f"vit_{args.tier}.onnx")
        row["extract2d_ms"], row["extract2d_all_ms"], out = median_ms(run, {"image": image}, args.warmup, args.runs)
        row["extract2d_vs_torch"] = agreement(out["tokens"], vit_reference)
        row["extract2d_vs_cfm"] = {p: agreement(out["tokens"], t) for p, t in cfm.items()}
        run = session(args.dir / f"map_{args.tier}.onnx")
        row["map_ms"], row["map_all_ms"], out = median_ms(
            run, {n: map_inputs[n] for n in MAP_INPUTS}, args.warmup, args.runs)
        row["map_vs_torch"] = worst([agreement(out[n], map_reference[n]) for n in MAP_OUTPUTS])
        print(f"bench_peers: {args.tier} {runtime} {precision}: extract2d {row['extract2d_ms']:.0f} ms, "
              f"map {row['map_ms']:.0f} ms", file=sys.stderr, flush=True)
        result["peers"].append(row)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


# ------------------------------------------------------------------ report


def cell(ms, gflop):
    return "—" if ms is None else f"{ms:.0f} ({gflop / ms * 1e3:.0f})"


def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}"


def rounds_cell(values):
    """The median of per-round ratios, with their range when there is more than one round."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mid = statistics.median(values)
    return f"{mid:.2f}" if len(values) == 1 else f"{mid:.2f} ({min(values):.2f}–{max(values):.2f})"


def report(args):
    """Markdown table on stdout, the combined JSON to --out; exit 1 on an agreement failure.

    With several rounds (files `cfm_bench_<precision>_<tier>_r<round>.json` and
    `peers_<tier>_r<round>.json`), a cell is the median of the rounds' medians and a ratio the
    median of the rounds' ratios (each from runs minutes apart), with their range."""
    cfm = {}  # (tier, precision) -> {round: cfm bench JSON}
    for path in args.cfm_bench:
        precision, tier, round_ = path.stem.split("_")[-3:]  # cfm_bench_<precision>_<tier>_r<round>
        cfm.setdefault((tier, precision), {})[round_] = json.loads(path.read_text())
    timed = {}  # tier -> {round: `time` JSON}
    for path in args.peers:
        tier, round_ = path.stem.split("_")[-2:]  # peers_<tier>_r<round>
        timed.setdefault(tier, {})[round_] = json.loads(path.read_text())
    first = [by_round[min(by_round)] for by_round in timed.values()]  # agreement: the first round's
    rounds = max((len(r) for r in timed.values()), default=1)
    how = (f" of {rounds} rounds (cells: the median of the rounds' medians; ratios: the median of the rounds' "
           f"ratios and their range)") if rounds > 1 else ""
    lines = [f"load average (1/5/15 min) at start {args.load_start}, at end {args.load_end}; "
             f"{first[0]['threads'] if first else '?'} threads; medians{how}; "
             f"cells: ms (GFLOP/s from cfm's FLOP count); ratios cfm / peer (< 1: cfm faster)", "",
             "| tier | stage | cfm fp32 | cfm bf16 | ONNX Runtime fp32 | OpenVINO fp32 | OpenVINO bf16 "
             "| cfm/ORT fp32 | cfm/OV fp32 | cfm/OV bf16 |", "|---|---|---|---|---|---|---|---|---|---|"]
    failures = []
    for tier, by_round in timed.items():
        for stage in ("extract2d", "map"):
            gflop = next(iter(cfm[(tier, "fp32")].values()))["gflop"][stage]

            def cfm_ms(precision, round_):
                bench = cfm.get((tier, precision), {}).get(round_)
                return bench["stages_ms"][stage] if bench else None

            def peer_ms(key, round_):
                by = {(p["runtime"], p["precision"]): p for p in by_round[round_]["peers"]}
                return by[key][f"{stage}_ms"] if key in by else None

            def median_of(ms):
                ms = [m for m in (ms(r) for r in by_round) if m is not None]
                return statistics.median(ms) if ms else None

            def ratios(precision, key):
                pairs = [(cfm_ms(precision, r), peer_ms(key, r)) for r in by_round]
                return rounds_cell([a / b for a, b in pairs if a is not None and b is not None])

            ort, ov32, ov16 = ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")
            lines.append(f"| {tier} | {stage} | {cell(median_of(lambda r: cfm_ms('fp32', r)), gflop)} | "
                         f"{cell(median_of(lambda r: cfm_ms('bf16', r)), gflop)} | "
                         f"{cell(median_of(lambda r: peer_ms(ort, r)), gflop)} | "
                         f"{cell(median_of(lambda r: peer_ms(ov32, r)), gflop)} | "
                         f"{cell(median_of(lambda r: peer_ms(ov16, r)), gflop)} | {ratios('fp32', ort)} | "
                         f"{ratios('fp32', ov32)} | {ratios('bf16', ov16)} |")
    lines += ["", "Agreement (max |diff| / max |reference|, cosine of the flattened tensors): 2D tokens "
              "against cfm's fp32 features (`cfm extract`) and against PyTorch (timm on the same weights); "
              "the map stage's outputs against PyTorch on cfm's mapper weights (worst of the four).",
              "", "| tier | runtime | extract2d vs cfm fp32 | extract2d vs PyTorch | map vs PyTorch |",
              "|---|---|---|---|---|"]
    for result in first:
        tier = result["tier"]
        rows = [(f"cfm {p}", result["cfm_vs_cfm_fp32"].get(p), a, None) for p, a in result["cfm_vs_torch"].items()]
        rows += [(f"{p['runtime']} {p['precision']}", p["extract2d_vs_cfm"].get("fp32"), p["extract2d_vs_torch"],
                  p["map_vs_torch"]) for p in result["peers"]]
        for label, vs_cfm, vs_torch, vs_map in rows:
            lines.append(f"| {tier} | {label} | {fmt(vs_cfm)} | {fmt(vs_torch)} | {fmt(vs_map)} |")
            bar = args.bf16_tolerance if label.endswith("bf16") else args.tolerance
            for name, value in (("extract2d vs cfm fp32", vs_cfm), ("extract2d vs PyTorch", vs_torch),
                                ("map vs PyTorch", vs_map)):
                if value and value["max_abs_diff_over_max_abs"] > bar:
                    failures.append(f"{tier} {label} {name}: {value['max_abs_diff_over_max_abs']:.2e} > {bar:g}")
    notes = sorted({r["note"] for r in first if "note" in r} | set(args.note or []))
    lines += [""] + [f"Note: {n}" for n in notes]
    print("\n".join(lines))
    combined = {"load_average_start": args.load_start, "load_average_end": args.load_end,
                "cfm_bench": {f"{t}_{p}_{r}": v for (t, p), by in sorted(cfm.items()) for r, v in sorted(by.items())},
                "peers": [v for by in timed.values() for _, v in sorted(by.items())],
                "notes": notes, "failures": failures, "table_markdown": "\n".join(lines)}
    args.out.write_text(json.dumps(combined, indent=2, sort_keys=True) + "\n")
    for failure in failures:
        print(f"bench_peers: agreement failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def fmt(a):
    return "—" if not a else f"{a['max_abs_diff_over_max_abs']:.1e}, {a['cosine']:.7f}"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("time", help="time the peers on one tier's ONNX files")
    t.add_argument("--dir", type=Path, required=True, help="export_peers.py output directory")
    t.add_argument("--tier", required=True)
    t.add_argument("--cfm-features", type=Path, help="`cfm extract` output (fp32) on input.safetensors")
    t.add_argument("--cfm-features-bf16", type=Path, help="the same with --precision bf16")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--runs", type=int, default=10)
    t.add_argument("--out", type=Path, required=True)
    r = commands.add_parser("report", help="table and combined JSON")
    r.add_argument("--cfm-bench", type=Path, nargs="*", default=[],
                   help="cfm bench outputs named cfm_bench_<fp32|bf16>_<tier>.json")
    r.add_argument("--peers", type=Path, nargs="*", default=[], help="`time` outputs")
    r.add_argument("--load-start", required=True)
    r.add_argument("--load-end", required=True)
    r.add_argument("--note", action="append", help="a line for the report (repeatable)")
    r.add_argument("--tolerance", type=float, default=1e-3, help="fp32 agreement bar (default 1e-3)")
    r.add_argument("--bf16-tolerance", type=float, default=0.03, help="bf16 agreement bar (default 0.03)")
    r.add_argument("--out", type=Path, required=True, help="combined JSON")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "time":
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        return time_tier(args)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
