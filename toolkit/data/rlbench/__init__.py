"""RLBench datasets without RLBench: reader, keyframes, converter to toolkit episode files.

- :func:`find_episodes` / :class:`RLBenchEpisode`: the stored demos (``low_dim_obs.pkl`` through
  a restricted unpickler, RGB / depth / mask PNGs, camera parameters, world point clouds).
- :func:`keypoint_discovery`: PerAct / RVT keyframes.
- :func:`convert` (``toolkit convert rlbench SRC --out DIR``): toolkit episode files for the
  policy and pretraining datasets.

The format matched (stepjam/RLBench 1.2.0) is documented in :mod:`toolkit.data.rlbench.format`.
Nothing here imports RLBench, PyRep or CoppeliaSim.
"""

from toolkit.data.rlbench.cameras import to_opencv
from toolkit.data.rlbench.format import RLBENCH_VERSION
from toolkit.data.rlbench.keyframes import keypoint_discovery
from toolkit.data.rlbench.reader import EpisodeRef, RLBenchEpisode, find_episodes, find_tasks
from toolkit.data.rlbench.unpickler import (
    RLBenchDataError,
    RLBenchDemo,
    RLBenchObservation,
    RLBenchPickleError,
    load_pickle,
)

__all__ = [
    "RLBENCH_VERSION",
    "ConvertConfig",
    "EpisodeRef",
    "RLBenchDataError",
    "RLBenchDemo",
    "RLBenchEpisode",
    "RLBenchObservation",
    "RLBenchPickleError",
    "convert",
    "find_episodes",
    "find_tasks",
    "keypoint_discovery",
    "load_pickle",
    "to_opencv",
]


def __getattr__(name: str):
    # the converter pulls in torch / h5py: load it on first use
    if name in ("convert", "ConvertConfig"):
        from toolkit.data.rlbench import converter as _convert

        return getattr(_convert, name)
    raise AttributeError(name)
