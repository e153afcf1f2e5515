"""RLBench suite: CLAR's tasks, the env adapter over RLBench's planning action mode, and the
missing-dependency path.

Importing this package imports neither RLBench nor PyRep (they load on the first ``make_env``,
raising :class:`~toolkit.envs.base.MissingSuiteDependencyError` with install instructions when
absent). Stored RLBench datasets are read and converted by :mod:`toolkit.data.rlbench`.
"""

from toolkit.envs.rlbench import tasks
from toolkit.envs.rlbench.backend import INSTALL_HINT, import_rlbench
from toolkit.envs.rlbench.suite import RLBenchSuite


def _register_alias() -> None:
    # get_suite("rlbench"): add the short name unless toolkit.envs is still initializing (then
    # its own _ALIASES table has to list it)
    import sys

    aliases = getattr(sys.modules.get("toolkit.envs"), "_ALIASES", None)
    if isinstance(aliases, dict):
        aliases.setdefault("rlbench", "RLBenchSuite")


_register_alias()

__all__ = ["INSTALL_HINT", "RLBenchSuite", "import_rlbench", "tasks"]
