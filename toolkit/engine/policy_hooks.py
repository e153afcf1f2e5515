"""Hooks for policy learning: normalization fitting and closed-loop evaluation during training."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from toolkit.registry import HOOKS, SUITES
from toolkit.utils.errors import ConfigError
from toolkit.utils.io import atomic_write_text


def _unwrap(model: Any) -> Any:
    return model.module if is_model_wrapper(model) else model


def write_instructions(path: str, used: Sequence[tuple[int, str]]) -> None:
    """``[{"seed": s, "instruction": sentence}, ...]`` of one task's evaluation rollouts."""
    rows = [{"seed": int(s), "instruction": text} for s, text in used]
    atomic_write_text(path, json.dumps(rows, indent=1))


@HOOKS.register_module()
class FitNormalizationHook(Hook):
    """Fit the policy's proprio / action normalizers on the training split before training.

    Runs once; on resume the fitted buffers come back from the checkpoint and nothing is refit.
    """

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        model = _unwrap(runner.model)
        if bool(model.action_normalizer.fitted) and bool(model.proprio_normalizer.fitted):
            return
        data = runner.train_dataloader.dataset.normalization_data()
        model.fit_normalization(data["proprio"], data["action"])
        runner.logger.info(
            f"fitted normalization on {len(data['action'])} training steps: "
            f"action offset {model.action_normalizer.offset.tolist()}, "
            f"scale {model.action_normalizer.scale.tolist()}"
        )


@HOOKS.register_module()
class RolloutEvalHook(Hook):
    """Every ``interval`` epochs (or iterations), roll the policy out in closed loop and log
    success rates.

    The CLAR / Lift3D protocol: R rollouts per task every K epochs, report the best success rate
    over these evaluations. Results go to ``<work_dir>/eval/history.json`` (one record per
    evaluation, kept across resumes), the visualizer (``eval/sr_<task>``, ``eval/sr_mean``), a
    plot ``<work_dir>/eval/sr_curve.png``, and the checkpoint with the best mean success rate is
    saved as ``best_sr.pth``.

    Args:
        suite: SUITES config (e.g. ``dict(type="MetaWorldSuite")``).
        tasks: tasks to evaluate (``None``: the training dataset's ``tasks``).
        interval: evaluate every K epochs (and after the last one).
        by_epoch: False: ``interval`` counts training iterations (CLAMP evaluates every N
            steps of an iteration-based schedule); history records then hold the iteration in
            ``epoch`` and ``"unit": "iter"``.
        episodes: rollouts per task (R).
        max_steps: step limit per rollout.
        video: write MP4s of the rollouts (an int ``k``: of the first ``k`` per task) at every
            evaluation.
        video_last: MP4s of the first ``k`` rollouts per task at the last evaluation only
            (after the final epoch / iteration): rollout videos for the finished policy without
            paying the RGB render at every evaluation.
        rollout_threads: torch intra-op threads while rolling out (restored afterwards).
        rollout_workers: roll each task's episodes out in this many processes at once (one
            :class:`~toolkit.engine.rollout.RolloutPool` for the whole run, started at the first
            evaluation; a copy of the policy each; same records as 1). Pays off when cores sit
            idle during evaluation (the training process waits meanwhile), not on a machine
            already busy with other jobs. Language-conditioned rollouts stay in one process.
        env_kwargs: extra arguments of ``suite.make_env`` (e.g. ``cameras``).
        language: ``dict(backend=..., paraphrases=True, held_out=0)`` for language-conditioned
            policies: every observation gets ``obs["lang"]``, the feature of the instruction
            of its rollout seed (seed ``s`` -> evaluation instruction ``s % K``, see
            :mod:`toolkit.data.language`); the sentences used go to ``instructions.json``
            beside the per-episode results. The training dataset's features are reused when
            it has them (same feature space, even after a fallback to ``hash``). ``None``: no
            language, unless the policy needs it and the dataset has a language table.
    """

    priority = "LOW"

    def __init__(
        self,
        suite: dict,
        tasks: Sequence[str] | None = None,
        interval: int = 10,
        episodes: int = 25,
        max_steps: int = 200,
        video: bool | int = False,
        video_last: int = 0,
        save_best: bool = True,
        env_kwargs: dict | None = None,
        language: dict | None = None,
        rollout_threads: int = 1,
        by_epoch: bool = True,
        rollout_workers: int = 1,
    ) -> None:
        from toolkit.data.language import check_language_cfg

        self.by_epoch = by_epoch
        self.unit = "epoch" if by_epoch else "iter"
        self.language = check_language_cfg(language, "RolloutEvalHook.language")
        self._table: Any = None
        self.suite_cfg = suite
        self.tasks = list(tasks) if tasks is not None else None
        self.interval, self.episodes, self.max_steps = interval, episodes, max_steps
        self.video, self.save_best = video, save_best
        if int(video_last) < 0:
            raise ConfigError(f"RolloutEvalHook.video_last must be >= 0, got {video_last}")
        self.video_last = int(video_last)
        self.env_kwargs = dict(env_kwargs or {})
        self.rollout_threads = rollout_threads
        if int(rollout_workers) < 1:
            raise ConfigError(
                f"RolloutEvalHook.rollout_workers must be >= 1, got {rollout_workers}"
            )
        self.rollout_workers = int(rollout_workers)
        self._pool: Any = None
        self._suite = None

    def _language_table(self, runner: Any, model: Any, tasks: Sequence[str]) -> Any:
        """The instruction features for evaluation, or None for a policy without language."""
        from toolkit.data.language import LanguageTable, build_language_table

        if self._table is not None and all(t in self._table.tasks for t in tasks):
            return self._table
        dataset = runner.train_dataloader.dataset
        own = getattr(dataset, "language", None)
        needs = int(getattr(model, "lang_dim", 0) or 0) > 0
        if self.language is None:
            if not needs:
                return None
            if own is None:
                raise ConfigError(
                    f"the policy takes language (model.lang_dim={model.lang_dim}) but neither "
                    "RolloutEvalHook.language nor the training dataset's language is set"
                )
            runner.logger.info("RolloutEvalHook: language from the training dataset")
            cfg = {"paraphrases": own.paraphrases, "held_out": own.held_out}
        else:
            cfg = dict(self.language)
        same = own is not None and all(t in own.tasks for t in tasks)
        same = same and (own.paraphrases, own.held_out) == (
            bool(cfg.get("paraphrases", True)),
            int(cfg.get("held_out", 0)),
        )
        root = getattr(dataset, "data_root", None)
        if same:
            self._table = own
        elif own is not None:  # keep the feature space the policy was trained in
            self._table = LanguageTable(
                tasks,
                own.featurizer,
                paraphrases=bool(cfg.get("paraphrases", True)),
                held_out=int(cfg.get("held_out", 0)),
                cache_dir=root,
            )
        else:
            self._table = build_language_table(tasks, cache_dir=root, **cfg)
        if needs and self._table.dim != model.lang_dim:
            raise ConfigError(
                f"language features are {self._table.dim}-d ({self._table.featurizer_key}), "
                f"the policy expects model.lang_dim={model.lang_dim}"
            )
        return self._table

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Record the feature space so ``toolkit eval`` rebuilds the same language features."""
        table = self._table
        if table is None:
            try:  # a runner that never trains may have no training loop to build
                table = getattr(runner.train_dataloader.dataset, "language", None)
            except Exception:
                table = None
        if table is not None:
            checkpoint.setdefault("meta", {})["language"] = table.meta

    def _history_path(self, runner: Any) -> str:
        return os.path.join(runner.work_dir, "eval", "history.json")

    def _load_history(self, runner: Any) -> list[dict]:
        path = self._history_path(runner)
        if os.path.isfile(path):
            with open(path) as f:
                return json.load(f)
        return []

    def after_train_epoch(self, runner: Any) -> None:
        if not self.by_epoch:
            return
        if not (self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner)):
            return
        if not is_main_process():
            return
        self.evaluate(runner, epoch=runner.epoch + 1, last=self.is_last_train_epoch(runner))

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.by_epoch:
            return
        last = runner.iter + 1 >= runner.max_iters
        if not (self.every_n_train_iters(runner, self.interval) or last):
            return
        if not is_main_process():
            return
        self.evaluate(runner, epoch=runner.iter + 1, last=last)

    def evaluate(self, runner: Any, epoch: int, last: bool = False) -> dict:

        if self._suite is None:
            self._suite = SUITES.build(self.suite_cfg)
        tasks = self.tasks or list(runner.train_dataloader.dataset.tasks)
        model = _unwrap(runner.model)
        table = self._language_table(runner, model, tasks)
        was_training = model.training
        model.eval()
        record: dict[str, Any] = {"epoch": epoch, "iter": runner.iter, "unit": self.unit, "sr": {}}
        start = time.time()
        # Batch-1 inference gains nothing from intra-op threads and loses a lot when cores are
        # shared (measured: PointNet select_action 36 ms on 1 thread vs 306 ms on 2 under load).
        train_threads = torch.get_num_threads()
        torch.set_num_threads(self.rollout_threads)
        try:
            self._run_tasks(runner, model, tasks, table, epoch, record, last)
        finally:
            torch.set_num_threads(train_threads)
            model.train(was_training)
        record["sr_mean"] = sum(record["sr"].values()) / len(record["sr"])
        record["seconds"] = round(time.time() - start, 1)
        return self._report(runner, record, epoch)

    def _rollout_pool(self) -> Any:
        if self.rollout_workers <= 1:
            return None
        if self._pool is None:
            from toolkit.engine.rollout import RolloutPool

            self._pool = RolloutPool(self.rollout_workers, self.rollout_threads)
        return self._pool

    def after_run(self, runner: Any) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _env_kwargs(self, model: Any) -> dict:
        """The hook's env kwargs plus what the policy says it needs at rollout time (e.g. depth
        images for CLAMP tokens), so variants of one recipe share one hook config."""
        need = getattr(model, "rollout_env_kwargs", None)
        return {**self.env_kwargs, **(need() if callable(need) else {})}

    def _run_tasks(
        self,
        runner: Any,
        model: Any,
        tasks: list,
        table: Any,
        epoch: int,
        record: dict,
        last: bool = False,
    ) -> None:
        from toolkit.engine.rollout import evaluate

        for task in tasks:
            out_dir = os.path.join(runner.work_dir, "eval", f"{self.unit}_{epoch}", task)
            transform = None
            if table is not None:
                transform = table.obs_transform(task, self._suite.eval_seed_offset)
            res = evaluate(
                self._suite,
                task,
                model,
                num_episodes=self.episodes,
                max_steps=self.max_steps,
                out_dir=out_dir,
                video=self.video or (self.video_last if last else False),
                progress=False,
                obs_transform=transform,
                pool=self._rollout_pool() if transform is None else None,
                **self._env_kwargs(model),
            )
            if transform is not None:
                write_instructions(os.path.join(out_dir, "instructions.json"), transform.used)
            record["sr"][task] = float(res["success_rate"])
            if "mean_max_stage" in res:  # partial success of staged tasks (ALOHA)
                record.setdefault("stage", {})[task] = res["mean_max_stage"]

    def _report(self, runner: Any, record: dict, epoch: int) -> dict:

        history = [h for h in self._load_history(runner) if h["epoch"] != epoch] + [record]
        atomic_write_text(self._history_path(runner), json.dumps(history, indent=1))
        best = max(history, key=lambda h: h["sr_mean"])
        runner.logger.info(
            f"closed-loop eval @ {self.unit} {epoch}: "
            + ", ".join(f"{t} {100 * s:.0f}%" for t, s in record["sr"].items())
            + f" | mean {100 * record['sr_mean']:.1f}% (best {100 * best['sr_mean']:.1f}% @ "
            f"{self.unit} {best['epoch']}) in {record['seconds']}s"
        )
        scalars = {f"eval/sr_{t}": s for t, s in record["sr"].items()}
        scalars["eval/sr_mean"] = record["sr_mean"]
        runner.visualizer.add_scalars(scalars, step=epoch)
        for k, v in scalars.items():
            runner.message_hub.update_scalar(k, v)
        if self.save_best and best is record:
            runner.save_checkpoint(
                runner.work_dir, "best_sr.pth", save_optimizer=False, save_param_scheduler=False
            )
        try:
            from toolkit.engine.plots import plot_sr_curves

            plot_sr_curves(
                {"policy": history}, os.path.join(runner.work_dir, "eval", "sr_curve.png")
            )
        except Exception as exc:  # a plotting failure must not kill training
            runner.logger.warning(f"could not plot the SR curve: {exc}")
        return record
