"""``toolkit bench chunk_policy``: cost of CLAMP's chunking policies (issue: Diffusion Policy
and ACT performance goals).

For each size (``cpu``: the CPU recipes' policy; ``paper``: ResNet-50 per camera, 4 / 7 layers,
width 768) it builds a :class:`~toolkit.models.policies.DiffusionPolicy` (and ACT) on random
inputs and measures:

- ``chunk_ms``: one action chunk (50 x 14) at batch 1: observation encoding + DDIM-10 or
  DDPM-100 denoising (the paper's target on a GPU: under 50 ms per chunk);
- ``train_sps``: training samples/s at ``--batch`` (forward, loss, backward, AdamW step).

Figures are wall-clock medians after warm-up, on CPU and, when CUDA is available, on the GPU
(``--device``); ratios compare DDPM-100 to DDIM-10 and GPU to CPU in the same run. Nothing is
asserted: CPU figures move with machine load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

HELP = "chunk latency (DDIM-10 / DDPM-100) and training samples/s of Diffusion Policy and ACT"

CAMERAS = ("front_left", "back_right", "left_wrist", "right_wrist")

SIZES: dict[str, dict[str, Any]] = {
    "cpu": dict(
        image_size=64,
        d_model=128,
        image_encoder=dict(type="ImageResNet", arch="resnet10t"),
        dp_head=dict(nhead=4, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=512),
        act_head=dict(
            nhead=4,
            num_encoder_layers=2,
            num_decoder_layers=1,
            num_vae_layers=2,
            dim_feedforward=512,
        ),
    ),  # fmt: skip
    "paper": dict(
        image_size=224,
        d_model=768,
        image_encoder=dict(type="ImageResNet", arch="resnet50"),
        dp_head=dict(nhead=8, num_encoder_layers=4, num_decoder_layers=7, dim_feedforward=3200),
        act_head=dict(
            nhead=8,
            num_encoder_layers=4,
            num_decoder_layers=1,
            num_vae_layers=4,
            dim_feedforward=3200,
        ),
    ),  # fmt: skip
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", nargs="+", default=["cpu", "paper"], choices=sorted(SIZES))
    p.add_argument("--devices", nargs="+", default=None, help="cpu / cuda (default: all found)")
    p.add_argument("--batch", type=int, default=8, help="training batch (paper: 8)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-act", action="store_true", help="skip ACT")


def _time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _build(kind: str, size: dict, device: str):
    from toolkit.registry import MODELS

    common = dict(
        cameras=CAMERAS,
        image_encoder=dict(size["image_encoder"]),
        d_model=size["d_model"],
        image_size=size["image_size"],
        chunk_size=50,
    )
    if kind == "dp":
        cfg = dict(type="DiffusionPolicy", head=dict(type="DiffusionTransformerHead",
                                                      **size["dp_head"]), **common)  # fmt: skip
    else:
        cfg = dict(type="ACTPolicy", head=dict(type="ACTTransformer", **size["act_head"]), **common)
    return MODELS.build(cfg).to(device)


def _batch(b: int, size: dict, device: str):
    import torch

    s = size["image_size"]
    return {
        "images": torch.randint(
            0, 256, (b, len(CAMERAS), 3, s, s), dtype=torch.uint8, device=device
        ),
        "proprio": torch.randn(b, 14, device=device),
        "action": torch.randn(b, 50, 14, device=device),
        "action_is_pad": torch.zeros(b, 50, dtype=torch.bool, device=device),
    }


def run(args: argparse.Namespace) -> int:
    import torch

    import toolkit.models  # noqa: F401 - registers the policies, heads and encoders

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    for dev in devices:
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        for name in args.sizes:
            size = SIZES[name]
            for kind in ("dp",) if args.no_act else ("dp", "act"):
                torch.manual_seed(0)
                policy = _build(kind, size, dev)
                n_params = sum(p.numel() for p in policy.parameters()) / 1e6
                one = _batch(1, size, dev)
                policy.eval()
                lat = {}
                with torch.no_grad():
                    if kind == "dp":
                        for sched, steps in (("ddim", 10), ("ddpm", 100)):
                            policy.inference = {"scheduler": sched, "steps": steps}
                            from diffusers import DDIMScheduler, DDPMScheduler

                            cls = DDIMScheduler if sched == "ddim" else DDPMScheduler
                            policy.infer_scheduler = cls(**policy.sched_cfg)
                            reps = args.repeats if sched == "ddim" else max(2, args.repeats // 2)
                            lat[sched] = 1e3 * _time(
                                lambda p=policy, o=one: p.sample(o), reps, sync
                            )
                    else:
                        lat["act"] = 1e3 * _time(
                            lambda p=policy, o=one: p.sample(o), args.repeats, sync
                        )
                policy.train()
                opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad])
                batch = _batch(args.batch, size, dev)

                def step(policy=policy, opt=opt, batch=batch):
                    losses = policy.loss(batch)
                    loss = sum(v for k, v in losses.items() if k.startswith("loss"))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

                t = _time(step, max(2, args.repeats // 2), sync)
                rows.append(
                    dict(device=dev, size=name, policy=kind, params_m=n_params,
                         sps=args.batch / t, **lat)
                )  # fmt: skip
                del policy, opt
                print(_row(rows[-1]), flush=True)
    print("\n| device | size | policy | params (M) | chunk DDIM-10 (ms) | chunk DDPM-100 (ms) "
          "| DDPM/DDIM | ACT chunk (ms) | train samples/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    gpu = {(r["size"], r["policy"]): r for r in rows if r["device"] == "cuda"}
    for r in rows:
        g = gpu.get((r["size"], r["policy"]))
        if r["device"] == "cpu" and g:
            key = "ddim" if r["policy"] == "dp" else "act"
            print(
                f"GPU/CPU speed-up ({r['size']} {r['policy']}): chunk "
                f"{r[key] / g[key]:.1f}x, training {g['sps'] / r['sps']:.1f}x"
            )
    return 0


def _row(r: dict) -> str:
    ddim, ddpm = r.get("ddim"), r.get("ddpm")
    ratio = f"{ddpm / ddim:.1f}x" if ddim and ddpm else "–"
    f = lambda v: f"{v:.1f}" if v is not None else "–"  # noqa: E731
    return (
        f"| {r['device']} | {r['size']} | {r['policy']} | {r['params_m']:.1f} | {f(ddim)} | "
        f"{f(ddpm)} | {ratio} | {f(r.get('act'))} | {r['sps']:.1f} |"
    )
