"""MetaWorld suite: tasks, seeds, cameras, env wrapper and scripted experts.

Importing this package does not import MetaWorld (it loads on the first ``make_env``).
"""

from toolkit.envs.metaworld import seeds, tasks
from toolkit.envs.metaworld.suite import MetaWorldSuite

__all__ = ["MetaWorldSuite", "seeds", "tasks"]
