"""Episode files: one HDF5 file per episode, with a versioned schema (docs/episodes.md).

- :class:`EpisodeWriter`: streaming, atomic writer (temporary file + ``os.replace``).
- :class:`Episode`: lazy reader with per-step access; validates the schema on open.
- :class:`EpisodeIndex`: a directory of episodes as one sequence of steps, with a cached manifest.
- :func:`check_episode`: every problem of one file (``toolkit data check DIR`` runs it on a tree).

The layout follows the ALOHA/ACT convention (``/observations/qpos``,
``/observations/images/<cam>``, ``/action``) plus depth, cameras, poses, state and extras; see
:mod:`toolkit.data.episodes_schema`.
"""

from toolkit.data.episodes_check import check_episode, open_episode_file
from toolkit.data.episodes_index import EpisodeIndex, EpisodeRecord, find_episode_files
from toolkit.data.episodes_reader import Episode
from toolkit.data.episodes_schema import SCHEMA_VERSION, EpisodeLayout
from toolkit.data.episodes_writer import EpisodeWriter
from toolkit.utils.errors import EpisodeFileError

__all__ = [
    "SCHEMA_VERSION",
    "Episode",
    "EpisodeFileError",
    "EpisodeIndex",
    "EpisodeLayout",
    "EpisodeRecord",
    "EpisodeWriter",
    "check_episode",
    "find_episode_files",
    "open_episode_file",
]
