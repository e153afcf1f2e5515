"""Config loading and mmengine Runner construction shared by ``toolkit train`` / ``eval`` / ``demo``."""

from __future__ import annotations

import ast
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import toolkit.engine  # noqa: F401  (hooks, optim wrappers, checkpoint loader)
from toolkit.registry import explain_unknown_type
from toolkit.utils.errors import CheckpointError, ConfigError


def load_config(path: str, cfg_options: Sequence[str] | dict | None = None) -> Config:
    """Read an mmengine pure-Python config, then apply ``key=value`` overrides.

    Raises :class:`ConfigError` with one readable line for a missing file, a syntax error in
    the file or a malformed override.
    """
    if not osp.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise ConfigError(
            f"syntax error in {exc.filename or path}:{exc.lineno}: {exc.msg}"
        ) from None
    except Exception as exc:  # mmengine wraps import / base-file errors in several types
        raise ConfigError(f"cannot read config {path}: {type(exc).__name__}: {exc}") from None
    if cfg_options:
        overrides = cfg_options if isinstance(cfg_options, dict) else parse_cfg_options(cfg_options)
        try:
            cfg.merge_from_dict(overrides)
        except Exception as exc:
            raise ConfigError(f"cannot apply --cfg-options {overrides}: {exc}") from None
    return cfg


def _literal(node: ast.AST) -> Any:
    """``ast.literal_eval`` plus ``dict(k=v, ...)`` calls, as configs write them. Nothing runs."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args or any(k.arg is None for k in node.keywords):
            raise ValueError("only dict(key=value, ...) calls are allowed")
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _parse_value(text: str) -> Any:
    """``1`` -> int, ``[1,2]`` -> list, ``dict(a=1)`` -> dict, ``True``/``None``; else str."""
    try:
        return _literal(ast.parse(text, mode="eval").body)
    except (ValueError, SyntaxError, TypeError):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() in ("none", "null"):
            return None
        return text


def parse_cfg_options(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``["model.backbone.type=PointNet", "train_cfg.max_epochs=3"]``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if (
            not sep
            or not key
            or any(c.isspace() for c in key)
            or key.startswith(".")
            or key.endswith(".")
        ):
            raise ConfigError(
                f"malformed --cfg-options entry '{item}': expected KEY=VALUE, e.g. train_cfg.max_epochs=3"
            )
        out[key] = _parse_value(value.strip())
    return out


def configure(
    cfg: Config,
    *,
    config_path: str | None = None,
    work_dir: str | None = None,
    resume: str | bool | None = None,
    launcher: str = "none",
    seed: int | None = None,
    amp: bool = False,
) -> Config:
    """Apply the CLI's run options to a config (in place) and return it."""
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get("work_dir"):
        stem = osp.splitext(osp.basename(config_path or "run"))[0]
        cfg.work_dir = osp.join("work_dirs", stem)
    cfg.setdefault("default_scope", "toolkit")
    cfg.launcher = launcher

    if resume:
        if resume is True or resume == "auto":
            cfg.resume = True  # mmengine picks the latest checkpoint in work_dir, if any
            cfg.load_from = None
        else:
            if not osp.isfile(resume):
                raise CheckpointError(f"--resume checkpoint not found: {resume}")
            cfg.resume = True
            cfg.load_from = resume
    if cfg.get("load_from") and not cfg.get("resume") and not osp.isfile(cfg.load_from):
        raise CheckpointError(f"load_from checkpoint not found: {cfg.load_from}")

    if seed is not None:
        randomness = dict(cfg.get("randomness") or {})
        randomness["seed"] = seed
        cfg.randomness = randomness

    if amp:
        ow = cfg.get("optim_wrapper")
        if ow is None:
            raise ConfigError("--amp needs an optim_wrapper in the config")
        if torch.cuda.is_available():
            ow.type = "AmpOptimWrapper"
            ow.setdefault("dtype", "bfloat16")
        else:
            ow.type = "toolkit.AutocastOptimWrapper"
            ow.dtype = "bfloat16"

    if launcher != "none" and not torch.cuda.is_available():
        # mmengine's pytorch launcher calls torch.cuda.set_device and passes device_ids to DDP,
        # both of which fail on a CPU-only machine: init gloo ourselves and wrap without ids.
        env_cfg = cfg.setdefault("env_cfg", {})
        env_cfg.setdefault("dist_cfg", {})["backend"] = "gloo"
        if cfg.get("model_wrapper_cfg") is None:
            cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)
    return cfg


def _init_cpu_distributed(cfg: Config) -> None:
    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized() and "RANK" in os.environ:
        backend = cfg.get("env_cfg", {}).get("dist_cfg", {}).get("backend", "gloo")
        dist.init_process_group(backend=backend)


def build_runner(cfg: Config) -> Runner:
    """Build mmengine's Runner, turning unknown ``type`` names into readable errors."""
    if cfg.get("launcher", "none") != "none" and not torch.cuda.is_available():
        _init_cpu_distributed(cfg)
    try:
        if "runner_type" in cfg:  # e.g. FlexibleRunner with an FSDP / DeepSpeed strategy
            from mmengine.registry import RUNNERS

            return RUNNERS.build(cfg)
        return Runner.from_cfg(cfg)
    except KeyError as exc:
        explained = explain_unknown_type(exc)
        if explained is None:
            raise
        raise explained from None


def train(cfg: Config) -> Runner:
    runner = build_runner(cfg)
    try:
        runner.train()
    except KeyError as exc:  # lazily built components (datasets, hooks) fail here
        explained = explain_unknown_type(exc)
        if explained is None:
            raise
        raise explained from None
    return runner
