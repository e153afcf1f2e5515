"""Training / evaluation engine: mmengine Runner glue, hooks, rollout evaluation."""

from toolkit.engine import checkpoint, hooks, optim  # noqa: F401  (register + install loader)
