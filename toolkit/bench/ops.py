"""``toolkit bench ops``: speed of FPS, kNN, Chamfer and the virtual-view renderer.

Each group of rows measures alternatives for the same work in the same run; ``ratio`` is a
row's median time over the fastest median of its group (1.00 = fastest). Renderer rows give
clouds/s; their ratio is the fastest row's throughput over the row's. Times are wall-clock
medians over ``--repeats`` runs after one warm-up (CUDA synchronised). Nothing is asserted:
the figures and the exact command go into docs/ops.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

HELP = "speed of the point-cloud ops (FPS, kNN, Chamfer) and the renderer, with ratios"

GROUPS = ("fps", "downsample", "knn", "chamfer", "render")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run (well under a minute)"
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto = CPU, then CUDA when available",
    )
    p.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="groups to run")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs per row (default 5; 3 with --quick)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _time_ms(fn: Callable[[], object], device: str, repeats: int) -> tuple[float, float]:
    """(median, min) wall-clock milliseconds over ``repeats`` calls after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def _print_group(title: str, rows: list[tuple[str, float, float]], unit: str = "ms") -> None:
    """rows: (name, median, min); for unit 'clouds/s' the values are throughputs (higher = better)."""
    print(f"\n{title}")
    if not rows:
        print("  (nothing measured)")
        return
    higher_better = unit != "ms"
    best = max(r[1] for r in rows) if higher_better else min(r[1] for r in rows)
    width = max(len(r[0]) for r in rows)
    print(f"  {'':{width}}  {'median ' + unit:>16}  {'best':>10}  {'ratio':>6}")
    for name, med, low in rows:
        ratio = best / med if higher_better else med / best
        print(f"  {name:{width}}  {med:16.2f}  {low:10.2f}  {ratio:6.2f}")


def _bench_fps(device: str, quick: bool, repeats: int) -> None:
    import torch

    from toolkit.ops import farthest_point_sample
    from toolkit.ops.sampling import available_fps_backends

    B, N = (2, 2048) if quick else (8, 8192)
    ns = (64, 128) if quick else (64, 128, 1024)
    xyz = torch.rand(B, N, 3, generator=torch.Generator().manual_seed(0)).to(device)
    backends = [b for b in available_fps_backends() if device == "cuda" or b != "pointnet2"]
    if device == "cuda":
        backends = [b for b in backends if b != "fpsample"]  # CPU library: not an alternative here
    for n in ns:
        rows = []
        ref = farthest_point_sample(xyz, n, backend="torch")
        for backend in backends:
            fn = lambda b=backend, n=n: farthest_point_sample(xyz, n, backend=b)  # noqa: E731
            same = bool(torch.equal(fn().cpu(), ref.cpu()))
            med, low = _time_ms(fn, device, repeats)
            rows.append((f"{backend}{'' if same else ' (indices differ!)'}", med, low))
        _print_group(f"FPS exact  B={B} N={N} -> {n}  [{device}]", rows)


def _bench_downsample(device: str, quick: bool, repeats: int) -> None:
    import torch

    from toolkit.ops import downsample_points
    from toolkit.ops.sampling import available_fps_backends

    N, n = (4096, 512) if quick else (8192, 1024)
    pts = torch.rand(N, 3, generator=torch.Generator().manual_seed(0)).to(device)
    rows = [
        (
            "fps (exact, backend auto)",
            *_time_ms(lambda: downsample_points(pts, n, "fps"), device, repeats),
        )
    ]
    if "fpsample" in available_fps_backends():
        rows.append(
            (
                "bucket_fps (approx, fpsample)",
                *_time_ms(lambda: downsample_points(pts, n, "bucket_fps"), device, repeats),
            )
        )
    rows.append(("random", *_time_ms(lambda: downsample_points(pts, n, "random"), device, repeats)))
    _print_group(f"downsample_points one cloud N={N} -> {n}  [{device}]", rows)


def _bench_knn(device: str, quick: bool, repeats: int) -> None:
    import torch

    from toolkit.ops import knn

    B, N, k = (2, 2048, 16) if quick else (8, 8192, 32)
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(B, N, 3, generator=g).to(device)
    for M in (64, 128):
        query = ref[:, :M]
        rows = [
            (
                "toolkit knn (exact differences)",
                *_time_ms(lambda q=query: knn(q, ref, k), device, repeats),
            ),
            (
                "cdist (matmul) + topk",
                *_time_ms(
                    lambda q=query: torch.cdist(q, ref).topk(k, dim=-1, largest=False),
                    device,
                    repeats,
                ),
            ),
        ]
        _print_group(f"kNN  B={B} N={N} M={M} k={k}  [{device}]", rows)


def _chamfer_naive(a, b):
    import torch

    d = torch.cdist(a, b) ** 2
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


_MEMORY_PROBE = """
import json, os, sys, threading, time, torch
from toolkit.ops import chamfer_distance
n, device = int(sys.argv[1]), sys.argv[2]
g = torch.Generator().manual_seed(0)
a = torch.rand(1, n, 3, generator=g).to(device)
b = torch.rand(1, n, 3, generator=g).to(device)
chamfer_distance(a[:, :64], b[:, :64])  # load kernels before the baseline

def rss():  # resident bytes now (Linux)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

peak, done = [0], threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)

if device == "cuda":
    torch.cuda.synchronize(); base = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
else:
    base = rss(); threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
out = chamfer_distance(a, b)
if device == "cuda":
    torch.cuda.synchronize(); peak[0] = torch.cuda.max_memory_allocated()
ms = (time.perf_counter() - t0) * 1e3
done.set()
print(json.dumps({"ms": ms, "extra_mib": (peak[0] - base) / 2**20}))
"""


def _bench_chamfer(device: str, quick: bool, repeats: int) -> None:
    import torch

    from toolkit.ops import chamfer_distance

    B, N = (2, 1024) if quick else (8, 2048)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(B, N, 3, generator=g).to(device)
    b = torch.rand(B, N, 3, generator=g).to(device)
    rows = [
        (
            "toolkit chamfer_distance (chunked)",
            *_time_ms(lambda: chamfer_distance(a, b), device, repeats),
        ),
        ("cdist^2 + min, full matrix", *_time_ms(lambda: _chamfer_naive(a, b), device, repeats)),
    ]
    _print_group(f"Chamfer L2^2 forward  B={B} N=M={N}  [{device}]", rows)

    # Large clouds, one fresh process so the peak-memory reading belongs to this call only.
    big = 10_000 if quick else 100_000
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(big), device],
        capture_output=True,
        text=True,
        env=env,
    )
    print(f"\nChamfer L2^2 forward  B=1 N=M={big}  [{device}]  (one run, fresh process)")
    if proc.returncode != 0:
        print(
            f"  failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        )
        return
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    kind = "CUDA peak allocated" if device == "cuda" else "peak RSS growth, sampled every 0.5 ms"
    print(f"  time {res['ms']:.0f} ms; extra memory ({kind}) {res['extra_mib']:.0f} MiB")
    dense = big * big * 4 / 2**30
    print(f"  (a dense {big}x{big} float32 distance matrix alone would take {dense:.1f} GiB)")


def _render_setup(B: int, N: int, device: str):
    import torch

    from toolkit.ops.render import clamp_cameras

    bounds = torch.tensor([[-0.5, -0.5, 0.0], [0.5, 0.5, 0.8]])
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(B, N, 3, generator=g) * (bounds[1] - bounds[0]) + bounds[0]).to(device)
    pose = torch.eye(4).repeat(B, 2, 1, 1)
    pose[..., :3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # approach axis pointing down
    pose[:, 0, :3, 3] = torch.tensor([-0.2, 0.1, 0.4])
    pose[:, 1, :3, 3] = torch.tensor([0.2, 0.1, 0.4])
    cams = clamp_cameras(pose, bounds, image_size=224).to(device=device)
    return pts, cams


def _bench_render(device: str, quick: bool, repeats: int) -> None:
    try:
        from toolkit.ops.render import render_views
    except ImportError as exc:
        print(f"\nrenderer: not available ({exc})")
        return
    N = 30_000 if quick else 300_000
    batches = (1, 4) if quick else (1, 16)
    rows = []
    try:
        for B in batches:
            pts, cams = _render_setup(B, N, device)
            views = render_views(pts, cams)
            med, low = _time_ms(
                lambda p=pts, c=cams: render_views(p, c), device, max(1, repeats // 2)
            )
            rows.append((f"batch {B}", B * 1e3 / med, B * 1e3 / low))
    except Exception as exc:  # the renderer is another module's work: report, do not fail the bench
        print(f"\nrenderer: not available ({type(exc).__name__}: {exc})")
        return
    V, _, H, W = views.shape[1:]
    _print_group(f"renderer  {N} points -> {V} views {H}x{W}  [{device}]", rows, unit="clouds/s")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append("cuda")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"toolkit bench ops{' --quick' if args.quick else ''}: torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, load average {load:.2f}, devices {devices}"
    )
    bench = {
        "fps": _bench_fps,
        "downsample": _bench_downsample,
        "knn": _bench_knn,
        "chamfer": _bench_chamfer,
        "render": _bench_render,
    }
    for device in devices:
        if device == "cuda":
            print(f"\nCUDA device: {torch.cuda.get_device_name()}")
        for name in GROUPS:
            if name in args.only:
                bench[name](device, args.quick, repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.2f} (other processes on the machine inflate times)")
    return 0
