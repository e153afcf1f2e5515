"""Training / evaluation engine: mmengine Runner glue, hooks, rollout evaluation."""

from toolkit.engine import checkpoint, clar_hooks, clar_viz, hooks, optim, policy_hooks, retrieval  # noqa: F401  (register)
