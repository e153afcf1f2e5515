"""Training / evaluation engine: mmengine Runner glue, hooks, rollout evaluation."""

from toolkit.engine import checkpoint, hooks, optim, policy_hooks  # noqa: F401  (register)
