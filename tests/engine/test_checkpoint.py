"""Checkpoint loading: mmengine checkpoints on torch >= 2.6, third-party weights, bad files."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from toolkit.engine.checkpoint import load_checkpoint_file, load_state_dict_file
from toolkit.utils.errors import CheckpointError


def test_mmengine_style_checkpoint_loads_without_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    buf = HistoryBuffer()
    buf.update(1.5)
    ckpt = {
        "state_dict": {"w": torch.arange(4.0)},
        "message_hub": {"log_scalars": {"loss": buf}},
        "meta": {"seed": np.int64(3), "arr": np.arange(3)},
        "rng_state": {"numpy": np.random.get_state()},  # noqa: NPY002
    }
    path = tmp_path / "epoch_1.pth"
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):  # what plain torch.load does on torch >= 2.6
        torch.load(path)
    out = load_checkpoint_file(str(path))
    torch.testing.assert_close(out["state_dict"]["w"], torch.arange(4.0))
    assert out["message_hub"]["log_scalars"]["loss"].current() == 1.5
    np.testing.assert_array_equal(out["meta"]["arr"], np.arange(3))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_pickle_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": _Evil()}, path)
    with pytest.raises(
        CheckpointError, match="evil.pth.*posix.system|evil.pth.*os.system|evil.pth"
    ):
        load_checkpoint_file(str(path))


def test_third_party_weights_load_weights_only(tmp_path):
    sd = {"layer.weight": torch.randn(3, 2), "layer.bias": torch.zeros(3)}
    torch.save({"state_dict": sd}, tmp_path / "w.pth")
    out = load_state_dict_file(str(tmp_path / "w.pth"))
    torch.testing.assert_close(out["layer.weight"], sd["layer.weight"])
    torch.save({"model": sd}, tmp_path / "m.pth")
    assert set(load_state_dict_file(str(tmp_path / "m.pth"), key="model")) == set(sd)
    with pytest.raises(CheckpointError, match="m.pth.*expected key 'nope'"):
        load_state_dict_file(str(tmp_path / "m.pth"), key="nope")
    torch.save({"x": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_state_dict_file(str(tmp_path / "evil.pth"))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_bad_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_checkpoint_file(str(path))
    with pytest.raises(CheckpointError, match="missing.pth"):
        load_checkpoint_file(str(tmp_path / "missing.pth"))
