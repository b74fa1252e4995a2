#!/usr/bin/python3
"""Minimal integrator's client for cfm's ZeroMQ wire protocol v1 (an independent
implementation: it shares no code with cfm).

Sends RGB + XYZ frames to `cfm serve` and prints one verdict per frame.

    # the daemon's default config connects to the sensor: the client binds
    /usr/bin/python3 tools/client_example.py --frames 10
    # a real frame: 8-bit RGB PNG (needs Pillow) + XYZ as a .npy float array [H, W, 3] in metres
    /usr/bin/python3 tools/client_example.py --rgb part.png --xyz part.npy

Protocol v1 (docs/protocol.md has every field, error code and rule):
  frame     = [topic, header JSON, RGB bytes H*W*3, XYZ float32 little-endian H*W*3]
  header    = {"v":1, "frame_id", "timestamp_ns", "width", "height", "rgb":"rgb8", "xyz":"xyz_f32le", "unit":"m"|"mm"}
  result    = [b"<prefix>.pass|reject|error|dropped", result JSON (, float32 224x224 anomaly map)]
              every result carries "seq" = 1, 2, 3, ...: a jump is a result this client did not get
  heartbeat = [b"<prefix>.heartbeat", {"received", "published", "undelivered", "pass", "reject", "error",
              "dropped", "queued", "preparing", "in_flight", "uptime_s", "last_seq", "time_ns", "v"}] every
              output.heartbeat_interval_s: silence means the daemon (or the network) is gone, not an idle line
Needs pyzmq and numpy (Debian: python3-zmq python3-numpy).
"""
import argparse
import json
import sys
import time

import numpy as np
import zmq


def synthetic_frame(index, width=160, height=120):
    """A tilted table at ~0.5 m with a box on it; every 3rd frame has a dent in the box."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x = (xs - width / 2) * 0.0012
    y = (ys - height / 2) * 0.0012
    z = 0.5 + 0.05 * x
    box = (np.abs(xs - width / 2) < width / 5) & (np.abs(ys - height / 2) < height / 5)
    z = np.where(box, z - 0.02, z)
    if index % 3 == 2:
        dent = (xs - width / 2) ** 2 + (ys - height / 2) ** 2 < (width / 20) ** 2
        z = np.where(dent, z + 0.006, z)
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = 90 + (xs * 40 / width).astype(np.uint8)
    rgb[..., 1] = 80
    rgb[..., 2] = 70
    rgb[box] = (180, 140, 90)
    return rgb, xyz


def load_frame(rgb_path, xyz_path):
    from PIL import Image  # optional dependency
    rgb = np.asarray(Image.open(rgb_path).convert("RGB"), dtype=np.uint8)
    xyz = np.load(xyz_path).astype(np.float32)
    if xyz.shape != rgb.shape:
        sys.exit(f"{xyz_path}: shape {xyz.shape} does not match the RGB image {rgb.shape}")
    return rgb, xyz


def encode(topic, frame_id, rgb, xyz, unit="m"):
    height, width = rgb.shape[:2]
    header = {"v": 1, "frame_id": frame_id, "timestamp_ns": time.time_ns(), "width": width,
              "height": height, "rgb": "rgb8", "xyz": "xyz_f32le", "unit": unit}
    return [topic.encode(), json.dumps(header).encode(),
            np.ascontiguousarray(rgb, dtype=np.uint8).tobytes(),
            np.ascontiguousarray(xyz, dtype="<f4").tobytes()]


def malformed(kind, topic, frame_id, rgb, xyz):
    """A bad frame of `kind` and the error code the daemon must answer with."""
    parts = encode(topic, frame_id, rgb, xyz)
    header = json.loads(parts[1])
    if kind == "bad_parts":
        parts = parts[:3]
    elif kind == "bad_header":
        header["v"] = 99
        parts[1] = json.dumps(header).encode()
    elif kind == "bad_size":
        parts[2] = parts[2][:-1]
    elif kind == "too_large":
        header["width"] = header["height"] = 1_000_000
        parts[1] = json.dumps(header).encode()
    elif kind == "out_of_range":
        bad = xyz.copy()
        bad[0, 0, 2] = 1e20
        parts[3] = bad.astype("<f4").tobytes()
    return parts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="frame endpoint (daemon input.endpoint)")
    ap.add_argument("--results", default="tcp://127.0.0.1:5556", help="result endpoint (daemon output.endpoint)")
    ap.add_argument("--pattern", choices=["pub", "push"], default="pub", help="pub (daemon: sub) or push (daemon: pull)")
    ap.add_argument("--connect", action="store_true", help="connect the frame socket instead of binding it")
    ap.add_argument("--topic", default="frame")
    ap.add_argument("--result-prefix", default="result")
    ap.add_argument("--frames", type=int, default=5, help="frames to send")
    ap.add_argument("--rate", type=float, default=0, help="frames per second (0 = as fast as possible)")
    ap.add_argument("--rgb", help="RGB PNG (needs Pillow)")
    ap.add_argument("--xyz", help="XYZ .npy [H, W, 3] float, metres")
    ap.add_argument("--malformed", action="store_true", help="also send one bad frame of every kind")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds for the connections to form")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the results")
    args = ap.parse_args()

    ctx = zmq.Context()
    results = ctx.socket(zmq.SUB)
    results.setsockopt(zmq.SUBSCRIBE, args.result_prefix.encode())
    results.connect(args.results)
    sender = ctx.socket(zmq.PUB if args.pattern == "pub" else zmq.PUSH)
    sender.setsockopt(zmq.LINGER, 2000)
    (sender.connect if args.connect else sender.bind)(args.endpoint)
    time.sleep(args.warmup)  # PUB/SUB subscriptions propagate asynchronously

    rgb, xyz = load_frame(args.rgb, args.xyz) if args.rgb else (None, None)
    run = format(time.time_ns() % 36 ** 6, "x")
    expected = {}  # frame_id -> expected error code, or None
    sent_at = {}
    messages = []
    for i in range(args.frames):
        f_rgb, f_xyz = (rgb, xyz) if rgb is not None else synthetic_frame(i)
        fid = f"{run}-{i}"
        messages.append((fid, encode(args.topic, fid, f_rgb, f_xyz), None))
    if args.malformed:
        f_rgb, f_xyz = synthetic_frame(0)
        for kind in ["bad_parts", "bad_header", "bad_size", "too_large", "out_of_range"]:
            fid = f"{run}-bad-{kind}"
            messages.append((fid, malformed(kind, args.topic, fid, f_rgb, f_xyz), kind))

    answers = {}
    stream = {"heartbeats": 0, "missed": 0, "last_seq": None}
    poller = zmq.Poller()
    poller.register(results, zmq.POLLIN)

    def receive(until):
        """Collects results until the monotonic time `until` (or all are in)."""
        while len(answers) < len(messages):
            wait_ms = int(max(0.0, until - time.monotonic()) * 1000)
            if not poller.poll(wait_ms):
                return
            parts = results.recv_multipart()
            topic, body = parts[0].decode(), json.loads(parts[1])
            if topic == f"{args.result_prefix}.heartbeat":
                stream["heartbeats"] += 1
                print(f"heartbeat: up {body['uptime_s']:.1f} s, received {body['received']}, published {body['published']}, "
                      f"undelivered {body['undelivered']}, queued {body['queued']}, in flight {body['in_flight']}, "
                      f"last seq {body['last_seq']}")
                continue
            seq, last = body.get("seq"), stream["last_seq"]
            if last is not None and seq is not None and seq > last + 1:
                stream["missed"] += seq - last - 1
                print(f"gap: results {last + 1}..{seq - 1} never reached this client")
            stream["last_seq"] = seq
            fid = body.get("frame_id")
            if fid not in sent_at:
                continue  # someone else's frame
            assert topic == f"{args.result_prefix}.{body['verdict']}", (topic, body["verdict"])
            answers[fid] = (body, (time.monotonic() - sent_at[fid]) * 1000)

    start = time.monotonic()
    for n, (fid, parts, code) in enumerate(messages):
        if args.rate > 0:
            receive(start + n / args.rate)  # read verdicts while pacing the frames
        expected[fid] = code
        sent_at[fid] = time.monotonic()
        sender.send_multipart(parts)
    receive(time.monotonic() + args.timeout)

    failures = 0
    for fid, _, code in messages:
        if fid not in answers:
            print(f"{fid:24s} MISSING")
            failures += 1
            continue
        body, rtt = answers[fid]
        err = body.get("error") or {}
        if body["verdict"] in ("pass", "reject"):
            print(f"{fid:24s} {body['verdict']:7s} score {body['score']:.4f} threshold {body['threshold']:.4f} "
                  f"tier {body['tier']} daemon {body['latency_ms']:.1f} ms round trip {rtt:.1f} ms")
            if body.get("regions"):
                # Largest defect first: box [x_min, y_min, x_max, y_max] in sensor pixels, max exclusive.
                largest = body["regions"][0]
                print(f"  {body['regions_total']} region(s); largest box {largest['box']} "
                      f"area {largest['area']} px peak {largest['peak']:.4f}")
        else:
            print(f"{fid:24s} {body['verdict']:7s} {err.get('code')}: {err.get('message')}")
        if code is not None and err.get("code") != code:
            print(f"  expected error {code}")
            failures += 1
        if code is None and body["verdict"] == "error":
            failures += 1
    counts = {}
    for body, _ in answers.values():
        counts[body["verdict"]] = counts.get(body["verdict"], 0) + 1
    print(json.dumps({"sent": len(messages), "answered": len(answers), "verdicts": counts, "failures": failures,
                      "heartbeats": stream["heartbeats"], "missed_by_seq": stream["missed"]}))
    sender.close()
    results.close()
    ctx.term()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
