"""Registries: scoping, plugin registration, unknown-name messages, `toolkit list`."""

from __future__ import annotations

import importlib

import pytest
import torch.nn as nn
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope

from toolkit.cli import main as cli_main
from toolkit.registry import BACKBONES, MODELS, REGISTRIES, SCOPE, unknown_type_message
from toolkit.utils.errors import UnknownComponentError


def test_children_of_mmengine_roots_share_the_toolkit_scope():
    assert MODELS.parent is MMENGINE_MODELS and MODELS.scope == SCOPE
    for name in ("datasets", "transforms", "hooks", "metrics", "visualizers"):
        assert REGISTRIES[name].parent is not None and REGISTRIES[name].scope == SCOPE


def test_plugin_module_registers_without_editing_the_package(plugin_path):
    mod = importlib.import_module("tiny_plugin")
    assert BACKBONES.get("TinyMLPBackbone") is mod.TinyMLPBackbone
    # `toolkit.X` resolves from mmengine's root and from another default scope.
    assert MMENGINE_MODELS.get("toolkit.TinyRegressor") is mod.TinyRegressor
    with DefaultScope.overwrite_default_scope("toolkit"):
        model = MMENGINE_MODELS.build(
            dict(type="TinyRegressor", backbone=dict(type="TinyMLPBackbone"))
        )
    assert isinstance(model.backbone, mod.TinyMLPBackbone)
    assert isinstance(BACKBONES.build(dict(type="toolkit.TinyMLPBackbone")), nn.Module)


def test_unknown_name_lists_registry_and_closest_names(plugin_path):
    importlib.import_module("tiny_plugin")
    with pytest.raises(UnknownComponentError) as err:
        BACKBONES.build(dict(type="TinyMLPBackbon"))
    msg = str(err.value)
    assert "'TinyMLPBackbon'" in msg and "toolkit::backbone registry" in msg
    assert "Did you mean: TinyMLPBackbone" in msg
    assert isinstance(err.value, KeyError)  # mmengine callers catch KeyError


def test_unknown_message_without_close_match_still_lists_known():
    reg = REGISTRIES["hooks"]
    msg = unknown_type_message("CompletelyDifferent", reg)
    assert "RNGStateHook" in msg and "hook registry" in msg


def test_toolkit_list_shows_registries(capsys):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "hooks (toolkit::hook" in out and "RNGStateHook" in out
    assert cli_main(["list", "nonsense"]) == 2
    assert "unknown registry 'nonsense'" in capsys.readouterr().err
