"""``toolkit bench clar``: CLAR pretraining throughput and parameter counts.

One row per (arch, teacher mode, device): a full training step of :class:`CLARPretrainer`
(MAE + global + local terms, forward, backward, AdamW) on synthetic frames shaped like the
MetaWorld data (1024-point clouds, 224x224 RGB), timed after warm-up. ``teacher=live`` runs
the frozen image teacher on the RGB every step; ``teacher=cached`` serves its outputs from
precomputed tensors (what :class:`~toolkit.engine.clar_hooks.TeacherCacheHook` does from
disk after the first pass). ``samples/s`` = batch / median step time; ``ratio`` = a row's
samples/s over the live row of the same arch and device. The teachers are randomly initialized
(weights do not change the cost). Nothing is asserted; figures go to docs/clar.md.

Parameter counts: our Point-MAE at ``arch`` (encoder, decoder) next to the reference
configuration's counts (Pang-Yatian/Point-MAE ``cfgs/pretrain.yaml``: 21,825,024 encoder,
29,006,432 with decoder, derived by hand and checked by tests/models/test_point_mae.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

HELP = "CLAR pretraining samples/s (live vs cached teacher, CPU / GPU) and parameter counts"

#: Point-MAE reference counts (see the module docstring).
REFERENCE_PARAMS = {"encoder": 21_825_024, "total": 29_006_432}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", nargs="+", default=["base"], choices=["tiny", "small", "base"])
    p.add_argument("--clip", default="ViT-B-32", help="open_clip architecture of the teachers")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="tiny model + tiny CLIP, batch 4")


def _tiny_clip() -> dict:
    from toolkit.models.teachers import TINY_VIT_CLIP_CFG

    return dict(model_name="bench-tiny-clip", model_cfg=TINY_VIT_CLIP_CFG)


def _build(arch: str, clip: dict) -> Any:
    from toolkit.registry import MODELS

    teacher = dict(random_init=True, **clip)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MODELS.build(
            dict(
                type="CLARPretrainer",
                backbone=dict(type="PointMAE", arch=arch),
                image_teacher=dict(type="OpenCLIPImageTeacher", **teacher),
                text_teacher=dict(type="OpenCLIPTextTeacher", **teacher),
            )
        )


def _batch(b: int, device: Any) -> dict:
    import torch

    from toolkit.ops.cameras import intrinsics_from_fovy, look_at

    g = torch.Generator().manual_seed(0)
    pts = torch.rand(b, 1024, 3, generator=g) * torch.tensor([1.0, 0.8, 0.5]) - torch.tensor(
        [0.5, -0.2, 0.0]
    )
    K = intrinsics_from_fovy(60.0, 224, 224)
    T = look_at([0.0, -0.6, 1.0], [0.0, 0.6, 0.0])
    batch = {
        "points": pts,
        "points_mask": torch.ones(b, 1024, dtype=torch.bool),
        "rgb": torch.randint(0, 256, (b, 3, 224, 224), generator=g, dtype=torch.uint8),
        "intrinsics": K.expand(b, 3, 3).clone(),
        "extrinsics": T.expand(b, 4, 4).clone(),
        "pixel_valid": torch.ones(b, 224, 224, dtype=torch.bool),
        "text": [f"instruction {i % 4}" for i in range(b)],
    }
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _Precomputed:
    """A cache stand-in holding the teacher outputs of the benchmark batch in memory."""

    def __init__(self, targets: dict) -> None:
        self.targets = {k: v.cpu() for k, v in targets.items()}

    def get(self, path: str, steps: list[int], camera: str) -> dict:
        return {k: v[steps] for k, v in self.targets.items()}


def _time(fn: Any, repeats: int, sync: Any) -> list[float]:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _bench_one(
    arch: str, device: str, clip: dict, batch_size: int, repeats: int
) -> tuple[float, float, float]:
    """Median ms of a training step with the live teacher, with cached targets, and of the
    image teacher's forward alone."""
    import torch

    model = _build(arch, clip).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = _batch(batch_size, device)
    batch["episode"] = ["bench"] * batch_size
    batch["step"] = torch.arange(batch_size)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        out = model.loss(batch)
        loss = sum(v for k, v in out.items() if k.startswith("loss_"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    live_ms = statistics.median(_time(step, repeats, sync)) * 1e3
    model.attach_teacher_cache(_Precomputed(model.image_targets(batch)), "", {"bench": "corner"})
    cached_ms = statistics.median(_time(step, repeats, sync)) * 1e3
    teacher = model.image_teacher
    teacher_ms = statistics.median(_time(lambda: teacher(batch["rgb"]), repeats, sync)) * 1e3
    return live_ms, cached_ms, teacher_ms


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    archs, clip, batch_size = args.arch, dict(model_name=args.clip), args.batch
    if args.quick:
        archs, clip, batch_size = ["tiny"], _tiny_clip(), 4
    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append("cuda")
    elif args.device == "cuda":
        print("CUDA is not available")
        return 2
    print(f"CLAR pretraining step, batch {batch_size} x 1024 points + 224x224 RGB, "
          f"teachers {clip['model_name']} (random init), {torch.get_num_threads()} CPU threads")  # fmt: skip
    print(f"{'arch':<6} {'device':<6} {'teacher':<8} {'step_ms':>9} {'samples/s':>10} {'ratio':>6}")
    for arch in archs:
        for device in devices:
            live_ms, cached_ms, teacher_ms = _bench_one(
                arch, device, clip, batch_size, args.repeats
            )
            for mode, ms in (("live", live_ms), ("cached", cached_ms)):
                sps = batch_size / (ms / 1e3)
                print(f"{arch:<6} {device:<6} {mode:<8} {ms:>9.1f} {sps:>10.1f} "
                      f"{live_ms / ms:>6.2f}")  # fmt: skip
            print(f"{'':<6} {device:<6} image teacher forward alone: {teacher_ms:.1f} ms per batch")
    print("\nparameters (Point-MAE):")
    from toolkit.models.backbones.point_mae import PointMAE

    for arch in archs:
        full = PointMAE(arch=arch)
        enc = sum(p.numel() for n, p in full.named_parameters() if not n.startswith("decoder."))
        total = sum(p.numel() for p in full.parameters())
        line = f"  {arch:<5} encoder {enc:>12,}  with decoder {total:>12,}"
        if arch == "base":
            ref_e, ref_t = REFERENCE_PARAMS["encoder"], REFERENCE_PARAMS["total"]
            line += (f"  | reference {ref_e:,} / {ref_t:,}  ratio {enc / ref_e:.4f} / "
                     f"{total / ref_t:.4f}")  # fmt: skip
        print(line)
    return 0
