"""Episode files, datasets and transforms. Imported by the registry to find datasets."""

from toolkit.data.episodes import (
    SCHEMA_VERSION,
    Episode,
    EpisodeIndex,
    EpisodeWriter,
    check_episode,
)

# Datasets and transforms (torch) register from toolkit.data.datasets, which the registries
# import lazily, so reading episode files stays free of torch imports.

__all__ = ["SCHEMA_VERSION", "Episode", "EpisodeIndex", "EpisodeWriter", "check_episode"]
