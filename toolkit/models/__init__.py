"""Models: top-level trainable models live in MODELS (pretrainers, policies).

Importing this package registers them; backbones / heads / objectives register through their
own registries' lazy imports.
"""

from toolkit.models import heads, policies, pretrainers  # noqa: F401
