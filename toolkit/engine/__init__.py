"""Training / evaluation engine: mmengine Runner glue, hooks, rollout evaluation."""

from toolkit.engine import (  # noqa: F401  (register)
    checkpoint,
    chunk_metric,
    clar_hooks,
    clar_viz,
    hooks,
    optim,
    policy_hooks,
    retrieval,
)
