"""``toolkit bench string``: cost of Cayley-STRING in the CLAMP image encoder.

Three tables per device:

1. **STRING work alone, per layer**: forward + backward of just what STRING adds to one
   attention layer: ``P`` (Cayley solve + folding ``P`` into the qkv weight) and the 3D RoPE
   (angles, rotors, rotating q and k). Small and fast, so many repeats give stable figures
   even on a busy machine; ``depth x`` these over the "none" model time is the *estimated*
   overhead.
2. **Attention layer alone**: one ``StringAttention`` layer per mode, fwd+bwd.
3. **Whole model**: :class:`~toolkit.models.backbones.string_vit.StringViT` fwd+bwd with
   ``string_mode`` string / rope / none (same size, same tokens, all through
   ``F.scaled_dot_product_attention``) and the *measured* ratio string / none (issue target:
   <= 1.10 at 980 tokens).

Modes run round-robin (one step of each per round, after one warm-up step each) so that load
from other processes hits them alike; figures are medians over the rounds (CUDA synchronised).
Nothing is asserted: the figures and the exact command go into docs/clamp_encoders.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

HELP = "forward+backward time of the STRING ViT in modes string / rope / none, and their ratio"

MODES = ("string", "rope", "none")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help="tiny ViT on five 64x64 views (80 tokens): a smoke run"
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto = CPU, then CUDA when available",
    )
    p.add_argument("--arch", default=None, help="StringViT preset (default b16; tiny with --quick)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 1; 2 with --quick)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of the model (default 3)")
    p.add_argument(
        "--dtype", choices=["fp32", "bf16"], default="fp32", help="fp32, or bf16 autocast"
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="modes to time")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def _inputs(batch: int, img_hw: tuple[int, int], patch: int, device: str):
    """Tiled (B, 4, H, W) depth + XYZ with a table-top workspace and ~10% empty patches."""
    import torch

    g = torch.Generator().manual_seed(0)
    h, w = img_hw
    img = torch.empty(batch, 4, h, w)
    img[:, 0] = 0.3 + torch.rand(batch, h, w, generator=g)
    lo, hi = torch.tensor([-0.6, -0.4, 0.0]), torch.tensor([0.6, 0.4, 0.6])
    xyz = torch.rand(batch, 3, h, w, generator=g)
    img[:, 1:] = lo.view(3, 1, 1) + (hi - lo).view(3, 1, 1) * xyz
    empty = torch.rand(batch, h // patch, w // patch, generator=g) < 0.1
    pix = empty.repeat_interleave(patch, 1).repeat_interleave(patch, 2)
    img.masked_fill_(pix.unsqueeze(1), 0.0)
    return img.to(device)


def _round_robin(
    steps: dict[str, Callable[[], None]], rounds: int, device: str
) -> dict[str, list[float]]:
    """Milliseconds per call of each step, interleaved, after one warm-up call each."""
    import torch

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for fn in steps.values():
        fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def _setup(args: argparse.Namespace, device: str):
    from toolkit.models.backbones.string_vit import ARCH_SETTINGS
    from toolkit.ops.render import patch_coordinates

    arch = args.arch or ("tiny" if args.quick else "b16")
    batch = args.batch or (2 if args.quick else 1)
    preset = ARCH_SETTINGS[arch]
    img = _inputs(batch, preset["img_size"], preset["patch_size"], device)
    coords, valid = patch_coordinates(img, preset["patch_size"])
    return arch, batch, preset, img, coords.flatten(1, 2), valid.flatten(1, 2)


def _bench_string_work(args: argparse.Namespace, device: str) -> dict[str, float]:
    """Table 1; returns the per-layer medians (ms) of the P and RoPE work."""
    import torch

    from toolkit.models.layers.string_attention import (
        StringAttention,
        apply_rope,
        rope_angles,
        rope_rotors,
    )

    arch, batch, preset, _, coords, valid = _setup(args, device)
    dim, heads = preset["embed_dim"], preset["num_heads"]
    torch.manual_seed(0)
    layer = StringAttention(dim, heads, mode="string", qkv_bias=True).to(device)
    n = coords.shape[1]
    g = torch.Generator().manual_seed(1)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    qk = torch.randn(batch, n, 2, heads, dim // heads, generator=g).to(device, dtype)
    qk.requires_grad_()

    def p_work() -> None:  # Cayley solve + fold into the qkv weight, fwd + bwd
        layer.zero_grad(set_to_none=True)
        w, b = layer.folded_qkv(layer.orthogonal())
        (w.sum() + b.sum()).backward()

    def rope_work() -> None:  # angles, rotors, rotate q and k, fwd + bwd
        layer.zero_grad(set_to_none=True)
        qk.grad = None
        rot = rope_rotors(rope_angles(coords, layer.freqs, valid).unsqueeze(2))
        apply_rope(qk, rot).float().sum().backward()

    times = _round_robin({"P (solve + fold)": p_work, "3D RoPE (q, k)": rope_work}, 20, device)
    print(
        f"\nSTRING work alone, per layer ({arch}: {dim}-d, {heads} heads) fwd+bwd  batch {batch}, "
        f"{n} tokens, {args.dtype}  [{device}]"
    )
    print(f"  {'work':18}  {'median ms':>10}  {'best ms':>9}")
    med = {}
    for name, t in times.items():
        med[name] = statistics.median(t)
        print(f"  {name:18}  {med[name]:10.2f}  {min(t):9.2f}")
    return med


def _bench_layer(args: argparse.Namespace, device: str) -> None:
    """Table 2: one attention layer per mode."""
    import torch

    from toolkit.models.layers.string_attention import StringAttention

    arch, batch, preset, _, coords, valid = _setup(args, device)
    n, dim = coords.shape[1], preset["embed_dim"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, n, dim, generator=g).to(device).requires_grad_()
    use_bf16 = args.dtype == "bf16"
    steps = {}
    for mode in args.modes:
        torch.manual_seed(0)
        layer = StringAttention(dim, preset["num_heads"], mode=mode, qkv_bias=True).to(device)

        def step(layer=layer) -> None:
            layer.zero_grad(set_to_none=True)
            x.grad = None
            with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16):
                out = layer(x, coords, valid)
            out.float().square().mean().backward()

        steps[mode] = step
    times = _round_robin(steps, max(5, 3 * args.repeats), device)
    print(
        f"\nattention layer alone ({arch}: {dim}-d, {preset['num_heads']} heads) fwd+bwd  "
        f"batch {batch}, {n} tokens, {args.dtype}  [{device}]"
    )
    med = {m: statistics.median(t) for m, t in times.items()}
    print(f"  {'mode':8}  {'median ms':>10}  {'best ms':>9}  {'- none ms':>9}")
    for mode, t in times.items():
        extra = f"{med[mode] - med['none']:9.2f}" if "none" in med else "        -"
        print(f"  {mode:8}  {med[mode]:10.2f}  {min(t):9.2f}  {extra}")


def _bench_model(args: argparse.Namespace, device: str, work: dict[str, float]) -> None:
    """Table 3: the whole StringViT per mode, measured and estimated overhead."""
    import torch

    from toolkit.models.backbones.string_vit import StringViT

    arch, batch, preset, img, _, _ = _setup(args, device)
    use_bf16 = args.dtype == "bf16"
    models, steps = {}, {}
    for mode in args.modes:
        torch.manual_seed(0)
        models[mode] = model = StringViT(arch=arch, string_mode=mode).to(device).train()

        def step(model=model) -> None:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=use_bf16):
                out = model(img)
            loss = out["pooled"].float().square().mean() + out["tokens"].float().square().mean()
            loss.backward()

        steps[mode] = step
    times = _round_robin(steps, args.repeats, device)
    tokens = models[args.modes[0]].num_tokens
    print(
        f"\nStringViT-{arch} fwd+bwd  batch {batch}, {tokens} tokens, {args.dtype}, SDPA  "
        f"[{device}]"
    )
    med = {m: statistics.median(t) for m, t in times.items()}
    print(f"  {'mode':8}  {'params':>10}  {'median ms':>10}  {'best ms':>9}  {'/ none':>7}")
    for mode, t in times.items():
        params = sum(p.numel() for p in models[mode].parameters())
        ratio = f"{med[mode] / med['none']:7.3f}" if "none" in med else "      -"
        print(f"  {mode:8}  {params:10d}  {med[mode]:10.1f}  {min(t):9.1f}  {ratio}")
    if "string" in med and "none" in med:
        depth = preset["depth"]
        est = 1 + depth * sum(work.values()) / med["none"]
        print(
            f"  STRING overhead string/none: measured {med['string'] / med['none']:.3f} "
            f"(best-of {min(times['string']) / min(times['none']):.3f}), estimated from the "
            f"STRING work alone {est:.3f} (= 1 + {depth} x {sum(work.values()):.1f} ms / "
            f"{med['none']:.0f} ms); target <= 1.10"
        )


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append("cuda")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"toolkit bench string{' --quick' if args.quick else ''}: torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, load average {load:.2f}, devices {devices}"
    )
    for device in devices:
        if device == "cuda":
            print(f"\nCUDA device: {torch.cuda.get_device_name()}")
        work = _bench_string_work(args, device)
        _bench_layer(args, device)
        _bench_model(args, device, work)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.2f} (other processes on the machine inflate times)")
    return 0
