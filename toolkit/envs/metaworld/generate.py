"""Moved to :mod:`toolkit.data.generate` (suite-agnostic); re-exported for old imports."""

from toolkit.data.generate import GenConfig, episode_path, failure_path, generate, parse_cameras
from toolkit.data.generate_worker import dry_run, record_episode, run_job

__all__ = [
    "GenConfig",
    "dry_run",
    "episode_path",
    "failure_path",
    "generate",
    "parse_cameras",
    "record_episode",
    "run_job",
]
