"""CLAR objectives: Chamfer MAE, InfoNCE with learnable temperature, local alignment."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from toolkit.models.objectives import ChamferMAELoss, InfoNCELoss, LocalAlignmentLoss
from toolkit.ops.cameras import intrinsics_from_fovy, look_at
from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError

# --------------------------------------------------------------------------------------------
# Chamfer MAE
# --------------------------------------------------------------------------------------------


def brute_chamfer_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Point-MAE: flatten to (B M) patches, ChamferDistanceL2 = mean(d1) + mean(d2) over all."""
    a = pred.reshape(-1, pred.shape[-2], 3).double()
    b = target.reshape(-1, target.shape[-2], 3).double()
    d = torch.cdist(a, b).square()  # (BM, K, K')
    return d.amin(2).mean() + d.amin(1).mean()


def test_chamfer_mae_matches_brute_force_and_registry():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, 8, 3, generator=g, requires_grad=True)
    target = torch.randn(3, 5, 6, 3, generator=g)
    loss_fn = OBJECTIVES.build(dict(type="ChamferMAELoss"))
    out = loss_fn(pred, target)
    assert set(out) == {"loss_mae"}
    assert out["loss_mae"].ndim == 0
    assert torch.allclose(out["loss_mae"].double(), brute_chamfer_l2(pred, target), atol=1e-6)
    out["loss_mae"].backward()
    pred_ref = pred.detach().double().requires_grad_()
    brute_chamfer_l2(pred_ref, target).backward()
    assert torch.allclose(pred.grad.double(), pred_ref.grad, atol=1e-6)


def test_chamfer_mae_is_per_patch_not_across_patches():
    """Target patches swapped between slots: each cloud is matched only with its own slot."""
    g = torch.Generator().manual_seed(1)
    target = torch.randn(1, 2, 16, 3, generator=g)
    assert ChamferMAELoss()(target, target)["loss_mae"] == 0.0
    perm = target[:, :, torch.randperm(16, generator=g)]  # point order does not matter
    assert ChamferMAELoss()(perm, target)["loss_mae"].abs() < 1e-12
    swapped = target.flip(1)
    assert ChamferMAELoss(name="rec")(swapped, target)["loss_rec"] > 0.1


def test_chamfer_mae_shape_errors():
    with pytest.raises(ShapeError, match="same patches"):
        ChamferMAELoss()(torch.randn(2, 3, 4, 3), torch.randn(2, 4, 4, 3))
    with pytest.raises(ShapeError, match=r"\(B, M, K, 3\)"):
        ChamferMAELoss()(torch.randn(2, 3, 4, 2), torch.randn(2, 3, 4, 2))


# --------------------------------------------------------------------------------------------
# InfoNCE
# --------------------------------------------------------------------------------------------


def hand_infonce(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """0.5 (CE(s x y^T, arange) + CE(s y x^T, arange)) written out with log-softmax sums."""
    x = x / x.norm(dim=-1, keepdim=True)
    y = y / y.norm(dim=-1, keepdim=True)
    logits = scale * x @ y.T
    n = x.shape[0]
    row = -(logits.diagonal() - logits.logsumexp(dim=1)).sum() / n
    col = -(logits.diagonal() - logits.logsumexp(dim=0)).sum() / n
    return 0.5 * (row + col)


def test_infonce_matches_hand_written_formula():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    loss_fn = OBJECTIVES.build(dict(type="InfoNCELoss", name="pi"))
    out = loss_fn(x, y)
    assert set(out) == {"loss_pi", "pi_logit_scale"}
    assert out["pi_logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert not out["pi_logit_scale"].requires_grad
    assert torch.allclose(out["loss_pi"], hand_infonce(x, y, 1 / 0.07), atol=1e-5)
    # normalize=False uses the raw dot products
    raw = InfoNCELoss("raw", init_temperature=1.0, normalize=False)(x, y)["loss_raw"]
    logits = x @ y.T
    labels = torch.arange(6)
    ce = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    assert torch.allclose(raw, ce, atol=1e-5)


def test_infonce_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=g)
    y = x + 0.05 * torch.randn(32, 8, generator=g)
    loss_fn = InfoNCELoss("pt")
    aligned = loss_fn(x, y)["loss_pt"]
    shuffled = loss_fn(x, y[torch.randperm(32, generator=g)])["loss_pt"]
    assert aligned < 0.5 * math.log(32) < shuffled
    assert aligned < 0.2


def test_infonce_temperature_learnable_clamped_or_fixed():
    x, y = torch.randn(8, 4), torch.randn(8, 4)
    loss_fn = InfoNCELoss("pi", max_logit_scale=50.0)
    assert [n for n, _ in loss_fn.named_parameters()] == ["logit_scale"]
    loss_fn(x, y)["loss_pi"].backward()
    assert loss_fn.logit_scale.grad is not None and loss_fn.logit_scale.grad != 0
    with torch.no_grad():
        loss_fn.logit_scale.fill_(10.0)  # overshoot, e.g. after an optimizer step
    out = loss_fn(x, y)
    assert loss_fn.logit_scale.item() == pytest.approx(math.log(50.0))
    assert out["pi_logit_scale"].item() == pytest.approx(50.0, rel=1e-5)
    assert torch.allclose(out["loss_pi"], hand_infonce(x, y, 50.0), atol=1e-4)
    fixed = InfoNCELoss("pi", init_temperature=0.1, learnable_temperature=False)
    assert list(fixed.parameters()) == [] and "logit_scale" in dict(fixed.named_buffers())
    assert torch.allclose(fixed(x, y)["loss_pi"], hand_infonce(x, y, 10.0), atol=1e-5)


def test_infonce_shape_errors():
    with pytest.raises(ShapeError, match="x and y"):
        InfoNCELoss("a")(torch.randn(4, 3), torch.randn(5, 3))


def _gather_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    xs = x.chunk(world)[rank].clone().requires_grad_()
    ys = y.chunk(world)[rank].clone().requires_grad_()
    loss_fn = InfoNCELoss("pi")
    loss = loss_fn(xs, ys)["loss_pi"]
    loss.backward()
    torch.save(
        dict(loss=loss.detach(), gx=xs.grad, gs=loss_fn.logit_scale.grad),
        os.path.join(out_dir, f"{rank}.pt"),
    )
    dist.destroy_process_group()


def test_infonce_gathers_negatives_across_ranks(tmp_path):
    """Two gloo ranks with half the batch each equal one process with the whole batch."""
    import torch.multiprocessing as mp

    world = 2
    # fork: the children inherit the imported modules (spawn re-imports torch: ~20 s here)
    mp.start_processes(
        _gather_worker,
        args=(world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        start_method="fork",
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g).requires_grad_()
    y = torch.randn(8, 5, generator=g).requires_grad_()
    single = InfoNCELoss("pi")
    loss = single(x, y)["loss_pi"]
    loss.backward()
    for rank in range(world):
        res = torch.load(tmp_path / f"{rank}.pt")
        assert torch.allclose(res["loss"], loss.detach(), atol=1e-6)  # global loss on each rank
        # gather_with_grad sums every rank's (identical) loss gradient back: W x the full grad,
        # which DDP's gradient averaging turns back into the single-process gradient
        assert torch.allclose(res["gx"] / world, x.grad.chunk(world)[rank], atol=1e-6)
        assert torch.allclose(res["gs"], single.logit_scale.grad, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Local alignment
# --------------------------------------------------------------------------------------------

H, W = 24, 32  # RGB image
FH, FW = 6, 8  # teacher feature grid


def scene(B: int = 2, G: int = 12, C: int = 16, D: int = 20, seed: int = 0):
    """Cameras looking at the origin; centers in a small cube around it (all in view)."""
    g = torch.Generator().manual_seed(seed)
    K = intrinsics_from_fovy(60.0, H, W).expand(B, 3, 3).clone()
    eyes = torch.tensor([[0.0, -1.5, 1.0], [1.2, 0.8, 1.1]])[:B]
    T = look_at(eyes, torch.zeros(B, 3))
    centers = (torch.rand(B, G, 3, generator=g) - 0.5) * 0.5
    tokens = torch.randn(B, G, D, generator=g)
    fmap = torch.randn(B, C, FH, FW, generator=g)
    return tokens, centers, fmap, K, T


def make_loss(**kw) -> LocalAlignmentLoss:
    torch.manual_seed(0)
    cfg = dict(token_dim=20, feature_dim=16, embed_dim=12, num_heads=4, num_points=2)
    cfg.update(kw)
    return OBJECTIVES.build(dict(type="LocalAlignmentLoss", **cfg))


def test_local_alignment_matches_manual_computation():
    tokens, centers, fmap, K, T = scene()
    loss_fn = make_loss()
    out = loss_fn(tokens, centers, fmap, K, T, (H, W), return_details=True)
    assert out["valid"].all() and out["local_valid_fraction"] == 1.0
    assert out["reference_points"].shape == (2, 12, 2)
    assert out["locations"].shape == (2, 12, 4, 2, 2) and out["weights"].shape == (2, 12, 4, 2)
    # independent: project with the pinhole formula, attend, then the symmetric InfoNCE
    R, t = T[:, :3, :3], T[:, :3, 3]
    pc = torch.einsum("bji,bgj->bgi", R, centers - t[:, None])  # R^T (p - t)
    uv = torch.stack(
        [
            (K[:, None, 0, 0] * pc[..., 0] / pc[..., 2] + K[:, None, 0, 2]) / W,
            (K[:, None, 1, 1] * pc[..., 1] / pc[..., 2] + K[:, None, 1, 2]) / H,
        ],
        -1,
    )
    assert torch.allclose(out["reference_points"], uv, atol=1e-5)
    aligned = loss_fn.attention(tokens, uv, fmap).reshape(24, -1)
    patch = loss_fn.token_proj(tokens).reshape(24, -1)
    expected = hand_infonce(patch, aligned, 1 / 0.07)
    assert torch.allclose(out["loss_local"], expected, atol=1e-4)


def test_local_alignment_masks_out_of_image_patches():
    tokens, centers, fmap, K, T = scene()
    eye = T[0, :3, 3]
    centers[0, 0] = 2 * eye  # behind camera 0 (the scene is at the origin, in front)
    centers[0, 1] = torch.tensor([3.0, 0.0, 0.0])  # far to the side: outside the frustum
    centers[1, 2] = T[1, :3, 3] + 0.5 * T[1, :3, 0]  # beside camera 1, z = 0 (degenerate)
    loss_fn = make_loss()
    out = loss_fn(tokens, centers, fmap, K, T, (H, W), return_details=True)
    bad = [(0, 0), (0, 1), (1, 2)]
    for b, g in bad:
        assert not out["valid"][b, g]
    assert int(out["valid"].sum()) == 24 - 3
    assert out["local_valid_fraction"].item() == pytest.approx(21 / 24)
    assert torch.isfinite(out["loss_local"])
    # the loss does not depend on the tokens of the masked patches
    tokens2 = tokens.clone()
    for b, g in bad:
        tokens2[b, g] = 100 * torch.randn(20)
    out2 = loss_fn(tokens2, centers, fmap, K, T, (H, W))
    assert torch.allclose(out["loss_local"], out2["loss_local"], atol=1e-6)
    # and their token gradients are exactly zero, the others are not
    tk = tokens.clone().requires_grad_()
    loss_fn(tk, centers, fmap, K, T, (H, W))["loss_local"].backward()
    for b, g in bad:
        assert tk.grad[b, g].abs().sum() == 0
    assert tk.grad[0, 2].abs().sum() > 0


def test_local_alignment_masks_invalid_pixels():
    tokens, centers, fmap, K, T = scene()
    loss_fn = make_loss()
    ref = loss_fn(tokens, centers, fmap, K, T, (H, W), return_details=True)["reference_points"]
    pixel_valid = torch.ones(2, H, W, dtype=torch.bool)
    hits = [(0, 3), (1, 5)]
    for b, g in hits:  # invalidate exactly the pixel these two centers land on
        u, v = int(ref[b, g, 0] * W), int(ref[b, g, 1] * H)
        pixel_valid[b, v, u] = False
    out = loss_fn(tokens, centers, fmap, K, T, (H, W), pixel_valid=pixel_valid, return_details=True)
    # expected validity, pixel by pixel (other centers may share an invalidated pixel)
    pix = (ref * torch.tensor([W, H])).floor().long()
    expected = pixel_valid[torch.arange(2)[:, None], pix[..., 1], pix[..., 0]]
    assert torch.equal(out["valid"], expected)
    for b, g in hits:
        assert not out["valid"][b, g]
    assert int(out["valid"].sum()) >= 24 - 4


def test_local_alignment_ignores_features_of_invalid_cells():
    """Feature cells whose pixels are all invalid are zeroed before sampling."""
    tokens, centers, fmap, K, T = scene()
    loss_fn = make_loss()
    pixel_valid = torch.ones(2, H, W, dtype=torch.bool)
    pixel_valid[:, :, : W // 2] = False  # left half: feature columns 0 .. FW/2 - 1 fully invalid
    out = loss_fn(tokens, centers, fmap, K, T, (H, W), pixel_valid=pixel_valid, return_details=True)
    assert out["valid"].any() and not out["valid"].all()
    assert torch.all(out["reference_points"][..., 0][out["valid"]] >= 0.5)
    fmap2 = fmap.clone()
    fmap2[..., : FW // 2] = 1e3 * torch.randn_like(fmap2[..., : FW // 2])
    out2 = loss_fn(tokens, centers, fmap2, K, T, (H, W), pixel_valid=pixel_valid)
    assert torch.allclose(out["loss_local"], out2["loss_local"], atol=1e-6)
    # without the mask those features do matter (sanity check of the test itself)
    a = loss_fn(tokens, centers, fmap, K, T, (H, W))["loss_local"]
    b = loss_fn(tokens, centers, fmap2, K, T, (H, W))["loss_local"]
    assert not torch.allclose(a, b, atol=1e-3)


def test_local_alignment_loss_decreases_when_optimized():
    tokens, centers, fmap, K, T = scene(B=2, G=16)
    tokens = tokens.requires_grad_()
    loss_fn = make_loss()
    opt = torch.optim.Adam([tokens, *loss_fn.parameters()], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = loss_fn(tokens, centers, fmap, K, T, (H, W))["loss_local"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::8]


def test_local_alignment_min_valid_fallback_keeps_gradients():
    tokens, centers, fmap, K, T = scene()
    centers = T[:, None, :3, 3] - 0.5 * T[:, None, :3, 2] + 0.01 * centers  # all behind
    tokens = tokens.requires_grad_()
    fmap = fmap.requires_grad_()
    loss_fn = make_loss()
    out = loss_fn(tokens, centers, fmap, K, T, (H, W), return_details=True)
    assert not out["valid"].any()
    assert out["loss_local"].item() == 0.0 and out["local_valid_fraction"].item() == 0.0
    out["loss_local"].backward()
    assert tokens.grad is not None and torch.all(tokens.grad == 0)
    for name, p in loss_fn.named_parameters():
        assert p.grad is not None and torch.all(p.grad == 0), name
    assert fmap.grad is None  # the teacher's features never receive gradients
    # exactly min_valid - 1 valid patches also falls back
    centers[0, 0] = 0.0
    one = make_loss(min_valid=2)(tokens, centers, fmap, K, T, (H, W))
    assert one["loss_local"].item() == 0.0


def test_local_alignment_teacher_gets_no_gradient_and_shape_errors():
    tokens, centers, fmap, K, T = scene()
    fmap = fmap.requires_grad_()
    tokens = tokens.requires_grad_()
    loss_fn = make_loss()
    loss_fn(tokens, centers, fmap, K, T, (H, W))["loss_local"].backward()
    assert fmap.grad is None and tokens.grad.abs().sum() > 0
    with pytest.raises(ShapeError, match="cam_to_world"):
        loss_fn(tokens, centers, fmap, K, T[:, :3], (H, W))
    with pytest.raises(ShapeError, match="pixel_valid"):
        loss_fn(tokens, centers, fmap, K, T, (H, W), pixel_valid=torch.ones(2, H, W + 1) > 0)
    with pytest.raises(ShapeError, match="feature_map"):
        loss_fn(tokens, centers, fmap[:, :8], K, T, (H, W))
