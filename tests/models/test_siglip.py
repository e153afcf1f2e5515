"""SigLIP objectives: pairwise and tri-modal, against the hand-written formula."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from toolkit.models.objectives import SigLIPLoss, TriModalSigLIPLoss
from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError


def hand_siglip(x: torch.Tensor, y: torch.Tensor, t: float, b: float) -> torch.Tensor:
    """-1/B sum_ij log sigmoid(l_ij (t x_i . y_j + b)), l = +1 on the diagonal, -1 elsewhere."""
    x = x.double() / x.double().norm(dim=-1, keepdim=True)
    y = y.double() / y.double().norm(dim=-1, keepdim=True)
    n = x.shape[0]
    total = torch.zeros((), dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            label = 1.0 if i == j else -1.0
            z = label * (t * float(x[i] @ y[j]) + b)
            total += -math.log(1.0 / (1.0 + math.exp(-z)))
    return total / n


def feats(n: int = 6, d: int = 16, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g) for _ in range(3)]


def test_siglip_matches_hand_written_formula():
    x, y, _ = feats()
    loss_fn = OBJECTIVES.build(dict(type="SigLIPLoss", name="it"))
    out = loss_fn(x, y)
    assert set(out) == {"loss_it", "it_logit_scale", "it_logit_bias"}
    assert out["it_logit_scale"].item() == pytest.approx(10.0, rel=1e-6)
    assert out["it_logit_bias"].item() == pytest.approx(-10.0)
    assert not out["it_logit_scale"].requires_grad
    torch.testing.assert_close(out["loss_it"].double(), hand_siglip(x, y, 10.0, -10.0))
    # other t, b; bf16 features are scored in float32
    other = SigLIPLoss("v", init_logit_scale=math.log(3.0), init_logit_bias=0.5)
    torch.testing.assert_close(other(x, y)["loss_v"].double(), hand_siglip(x, y, 3.0, 0.5))
    low = other(x.bfloat16(), y.bfloat16())["loss_v"]
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.double(), hand_siglip(x.bfloat16(), y.bfloat16(), 3.0, 0.5))
    logits = other.logits(x, y)
    torch.testing.assert_close(
        logits, 3.0 * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T + 0.5, atol=1e-5, rtol=0
    )


def test_siglip_learnable_or_fixed_and_errors():
    x, y, _ = feats()
    loss_fn = SigLIPLoss("it")
    assert {n for n, _ in loss_fn.named_parameters()} == {"logit_scale", "logit_bias"}
    loss_fn(x, y)["loss_it"].backward()
    assert loss_fn.logit_scale.grad != 0 and loss_fn.logit_bias.grad != 0
    fixed = SigLIPLoss("it", learnable=False)
    assert not list(fixed.parameters()) and "logit_bias" in dict(fixed.named_buffers())
    with pytest.raises(ShapeError, match="x and y"):
        loss_fn(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="loss"):
        SigLIPLoss("my_loss")


def test_trimodal_is_the_mean_of_pairs_with_their_own_scale_and_bias():
    x, y, z = feats()
    loss_fn = OBJECTIVES.build(dict(type="TriModalSigLIPLoss"))
    assert len(list(loss_fn.parameters())) == 6  # t, b per pair
    with torch.no_grad():  # make the pairs' parameters differ
        for k, pair in enumerate(loss_fn.pairs):
            loss_fn.pair_loss(pair).logit_scale.fill_(math.log(2.0 + k))
            loss_fn.pair_loss(pair).logit_bias.fill_(-1.0 - k)
    out = loss_fn(image=x, text=y, action=z)
    terms = {
        "image_text": hand_siglip(x, y, 2.0, -1.0),
        "image_action": hand_siglip(x, z, 3.0, -2.0),
        "text_action": hand_siglip(y, z, 4.0, -3.0),
    }
    assert [k for k in out if "loss" in k] == ["loss_clamp"]
    for pair, want in terms.items():
        torch.testing.assert_close(out[f"clamp_{pair}"].double(), want)
        assert not out[f"clamp_{pair}"].requires_grad
    assert out["clamp_text_action_logit_scale"].item() == pytest.approx(4.0, rel=1e-6)
    assert out["clamp_text_action_logit_bias"].item() == pytest.approx(-3.0)
    torch.testing.assert_close(out["loss_clamp"].double(), sum(terms.values()) / 3)
    shared = TriModalSigLIPLoss(share_scale_bias=True)
    assert len(list(shared.parameters())) == 2
    got = shared(image=x, text=y, action=z)["loss_clamp"].double()
    want = (
        hand_siglip(x, y, 10, -10) + hand_siglip(x, z, 10, -10) + hand_siglip(y, z, 10, -10)
    ) / 3
    torch.testing.assert_close(got, want)


def test_trimodal_without_text_and_errors():
    x, _, z = feats()
    ablation = TriModalSigLIPLoss(name="notext", pairs=("image_action",))
    out = ablation(image=x, action=z)  # no text needed
    assert set(out) == {
        "loss_notext",
        "notext_image_action",
        "notext_image_action_logit_scale",
        "notext_image_action_logit_bias",
    }
    torch.testing.assert_close(out["loss_notext"].double(), hand_siglip(x, z, 10.0, -10.0))
    with pytest.raises(ValueError, match=r"need features \['text'\]"):
        TriModalSigLIPLoss()(image=x, action=z)
    with pytest.raises(ValueError, match="two different modalities"):
        TriModalSigLIPLoss(pairs=("image",))
    with pytest.raises(ValueError, match="non-empty list"):
        TriModalSigLIPLoss(pairs="image_text")


def test_optimizing_aligned_features_lowers_the_loss():
    torch.manual_seed(0)
    n, d = 16, 8
    x, y, z = (torch.randn(n, d).requires_grad_() for _ in range(3))
    loss_fn = TriModalSigLIPLoss()
    opt = torch.optim.Adam([x, y, z, *loss_fn.parameters()], lr=0.05)
    first = None
    for _ in range(100):
        loss = loss_fn(image=x, text=y, action=z)["loss_clamp"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = loss_fn(image=x, text=y, action=z)
    assert final["loss_clamp"].item() < 0.2 * first
    probs = torch.sigmoid(loss_fn.pair_loss("image_action").logits(x, z)).detach()
    assert (probs.diagonal() > 0.5).all()  # matched pairs now score above chance
    assert (probs - torch.diag(probs.diagonal())).max() < 0.5


def _dist_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    x, y, z = feats(8, 5)
    xs, ys, zs = (t.chunk(world)[rank].clone().requires_grad_() for t in (x, y, z))
    loss_fn = TriModalSigLIPLoss()
    out = loss_fn(image=xs, text=ys, action=zs)
    out["loss_clamp"].backward()
    torch.save(
        dict(
            loss=out["loss_clamp"].detach(),
            gx=xs.grad,
            gy=ys.grad,
            gz=zs.grad,
            gt=loss_fn.pair_loss("image_text").logit_scale.grad,
            gb=loss_fn.pair_loss("text_action").logit_bias.grad,
        ),
        os.path.join(out_dir, f"{rank}.pt"),
    )
    dist.destroy_process_group()


def test_siglip_negatives_across_two_gloo_ranks(tmp_path):
    """Two ranks with half the batch each == one process with the whole batch, under DDP's
    gradient averaging: the mean of the per-rank losses and of the t / b gradients equals the
    single-process value; a rank's feature gradient is W x the single-process one (the exchange
    sends every rank's loss gradient back; DDP's averaging divides by W)."""
    import torch.multiprocessing as mp

    world = 2
    # fork: the children inherit the imported modules (spawn re-imports torch: ~20 s here)
    mp.start_processes(
        _dist_worker,
        args=(world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        start_method="fork",
    )
    x, y, z = (t.requires_grad_() for t in feats(8, 5))
    single = TriModalSigLIPLoss()
    loss = single(image=x, text=y, action=z)["loss_clamp"]
    loss.backward()
    res = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    torch.testing.assert_close(sum(r["loss"] for r in res) / world, loss.detach())
    assert not torch.allclose(res[0]["loss"], res[1]["loss"])  # each rank: its own rows
    gt = sum(r["gt"] for r in res) / world
    torch.testing.assert_close(gt, single.pair_loss("image_text").logit_scale.grad)
    gb = sum(r["gb"] for r in res) / world
    torch.testing.assert_close(gb, single.pair_loss("text_action").logit_bias.grad)
    for rank, r in enumerate(res):
        for key, full in (("gx", x), ("gy", y), ("gz", z)):
            torch.testing.assert_close(r[key] / world, full.grad.chunk(world)[rank])
