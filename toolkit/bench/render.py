"""``toolkit bench render``: throughput of the virtual-view renderer (clouds per second).

Default workload = CLAMP's: 300k-point clouds rendered into the five CLAMP views (3 fixed + 2
wrist) at 224x224, channels (depth, x, y, z). Measures eager and ``torch.compile`` at each
batch size and torch thread count, prints one row per setting and the compiled/eager ratio.
``--quick`` is a smoke run with tiny sizes (eager only, well under a second of rendering);
options given explicitly override its sizes. Nothing here asserts a time: CPU figures move
with machine load.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

HELP = "virtual-view renderer throughput (300k points -> 5 x 224x224x4), eager vs compiled"

#: Settings of the full run and of ``--quick`` (no compile: inductor alone takes tens of seconds).
DEFAULTS = dict(batch_sizes=[1, 16], n_points=300_000, image_size=224, repeats=5)
DEFAULT_MODES = ["eager", "compiled"]
QUICK = dict(batch_sizes=[1, 2], n_points=4096, image_size=64, repeats=2)
QUICK_MODES = ["eager"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny smoke run: {QUICK}, modes {QUICK_MODES} (explicit options override)",
    )
    # None = the --quick or full default, resolved in run()
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default 1 16")
    p.add_argument("--n-points", type=int, default=None, help="default 300000")
    p.add_argument("--image-size", type=int, default=None, help="default 224")
    p.add_argument("--threads", nargs="+", type=int, default=None, help="torch thread counts")
    p.add_argument(
        "--modes",
        nargs="+",
        choices=["eager", "compiled"],
        default=None,
        help="default eager compiled",
    )
    p.add_argument("--repeats", type=int, default=None, help="default 5")
    p.add_argument("--device", default="cpu")


def benchmark_render(
    batch_sizes: Sequence[int] = (1, 16),
    n_points: int = 300_000,
    image_size: int = 224,
    modes: Sequence[str] = ("eager", "compiled"),
    threads: Sequence[int] | None = None,
    repeats: int = 5,
    device: str = "cpu",
    seed: int = 0,
) -> list[dict]:
    """Time :func:`toolkit.ops.render.render_views` on random clouds in a 1 m workspace.

    Returns one dict per (threads, batch, mode): ``ms_best``, ``ms_median`` per call,
    ``clouds_per_s`` (from the median), ``cpu_ms_median`` (process CPU time per call, all
    threads: less sensitive than wall time to other jobs on the machine), ``first_call_s``
    (includes compilation).
    """
    import torch

    from toolkit.ops.render import clamp_cameras, render_views

    rows = []
    g = torch.Generator().manual_seed(seed)
    bounds = torch.tensor([[-0.5, -0.5, 0.0], [0.5, 0.5, 0.6]])
    old_threads = torch.get_num_threads()
    for nt in threads or [old_threads]:
        torch.set_num_threads(nt)
        for B in batch_sizes:
            pts = (
                bounds[0] + (bounds[1] - bounds[0]) * torch.rand(B, n_points, 3, generator=g)
            ).to(device)
            poses = torch.eye(4).repeat(B, 2, 1, 1)
            poses[:, :, :3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # pointing down
            poses[:, :, :3, 3] = torch.tensor([[-0.25, 0.0, 0.35], [0.25, 0.0, 0.35]])
            cams = clamp_cameras(poses, bounds, image_size).to(device)
            for mode in modes:
                compiled = mode == "compiled"
                times, cpu = [], []
                for _ in range(repeats + 1):  # the first call (compilation) is reported apart
                    t0, c0 = time.perf_counter(), time.process_time()
                    out = render_views(pts, cams, compile=compiled)
                    if out.is_cuda:
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                first = times.pop(0)
                cpu = sorted(cpu[1:])
                times.sort()
                med = times[len(times) // 2]
                rows.append(
                    dict(
                        threads=nt,
                        batch=B,
                        mode=mode,
                        ms_best=1e3 * times[0],
                        ms_median=1e3 * med,
                        clouds_per_s=B / med,
                        cpu_ms_median=1e3 * cpu[len(cpu) // 2],
                        first_call_s=first,
                        device=device,
                    )
                )
    torch.set_num_threads(old_threads)
    return rows


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left at None from the --quick or the full defaults."""
    quick = getattr(args, "quick", False)
    base = dict(QUICK if quick else DEFAULTS, modes=QUICK_MODES if quick else DEFAULT_MODES)
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, list(value) if isinstance(value, list) else value)
    return args


def run(args: argparse.Namespace) -> int:
    args = _resolve(args)
    quick = " (--quick)" if getattr(args, "quick", False) else ""
    rows = benchmark_render(
        args.batch_sizes,
        args.n_points,
        args.image_size,
        args.modes,
        args.threads,
        args.repeats,
        args.device,
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"render_views: {args.n_points} points -> 5 x {args.image_size}x{args.image_size}x4 "
        f"(CLAMP rig), {args.repeats} repeats{quick}, "
        f"device {args.device}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(
        f"{'threads':>7} {'batch':>5} {'mode':>9} {'ms/call med':>12} {'ms/call best':>13} "
        f"{'clouds/s':>9} {'CPU ms/call':>12} {'first call s':>13}"
    )
    for r in rows:
        print(
            f"{r['threads']:>7} {r['batch']:>5} {r['mode']:>9} {r['ms_median']:>12.2f} "
            f"{r['ms_best']:>13.2f} {r['clouds_per_s']:>9.1f} {r['cpu_ms_median']:>12.2f} "
            f"{r['first_call_s']:>13.3f}"
        )
    by = {(r["threads"], r["batch"], r["mode"]): r for r in rows}
    for (nt, B, mode), r in by.items():
        if mode == "compiled" and (nt, B, "eager") in by:
            ratio = by[(nt, B, "eager")]["ms_median"] / r["ms_median"]
            print(f"compiled / eager speed-up (threads {nt}, batch {B}): {ratio:.2f}x")
    return 0
