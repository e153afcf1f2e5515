"""The toolkit's registries.

Two kinds live here:

- Children of mmengine's root registries (MODELS, DATASETS, TRANSFORMS, HOOKS, METRICS, ...),
  with scope ``toolkit``. mmengine's Runner builds from these, and ``type='toolkit.X'``
  resolves from any other scope.
- Component registries mmengine has no root for (BACKBONES, OBJECTIVES, HEADS, SUITES). Each is
  its own root with scope ``toolkit``: mmengine's ``_add_child`` refuses two children of one
  parent with the same scope, and ``switch_scope_and_registry`` (run by every ``build`` under the
  Runner's default scope ``toolkit``) searches the tree for a registry with that exact scope, so
  nesting them under MODELS with another scope would make every nested build miss.

Every registry here raises :class:`~toolkit.utils.errors.UnknownComponentError` for an unknown
``type``: the message names the registry, the unknown name and the closest registered names.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

from toolkit.utils.errors import UnknownComponentError

SCOPE = "toolkit"


class ToolkitRegistry(Registry):
    """mmengine Registry whose unknown-name error lists the closest registered names."""

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().build(cfg, *args, **kwargs)
        except UnknownComponentError:
            raise
        except KeyError as exc:
            explained = explain_unknown_type(exc)
            if explained is None:
                raise
            raise explained from None

    def known_names(self, include_parents: bool = True) -> list[str]:
        """All names reachable from this registry (own, then ancestors')."""
        self.import_from_location()
        names = list(self._module_dict)
        parent = self.parent if include_parents else None
        while parent is not None:
            parent.import_from_location()
            names.extend(parent._module_dict)
            parent = parent.parent
        return sorted(set(names))


def _child(name: str, parent: Registry, locations: list[str]) -> ToolkitRegistry:
    return ToolkitRegistry(name, parent=parent, scope=SCOPE, locations=locations)


def _root(name: str, locations: list[str]) -> ToolkitRegistry:
    return ToolkitRegistry(name, scope=SCOPE, locations=locations)


# Top-level trainable models (pretrainers, policies): built by the Runner from `model=`.
MODELS = _child("model", MMENGINE_MODELS, ["toolkit.models"])
DATASETS = _child("dataset", MMENGINE_DATASETS, ["toolkit.data.datasets"])
DATA_SAMPLERS = _child("data sampler", MMENGINE_DATA_SAMPLERS, ["toolkit.data.datasets"])
TRANSFORMS = _child("transform", MMENGINE_TRANSFORMS, ["toolkit.data.datasets"])
HOOKS = _child("hook", MMENGINE_HOOKS, ["toolkit.engine"])
METRICS = _child("metric", MMENGINE_METRICS, ["toolkit.engine"])
LOOPS = _child("loop", MMENGINE_LOOPS, ["toolkit.engine"])
VISUALIZERS = _child("visualizer", MMENGINE_VISUALIZERS, ["toolkit.engine"])
VISBACKENDS = _child("vis_backend", MMENGINE_VISBACKENDS, ["toolkit.engine"])
OPTIM_WRAPPERS = _child("optim_wrapper", MMENGINE_OPTIM_WRAPPERS, ["toolkit.engine"])
PARAM_SCHEDULERS = _child("parameter scheduler", MMENGINE_PARAM_SCHEDULERS, ["toolkit.engine"])

# Component registries (see the module docstring for why they are roots).
BACKBONES = _root("backbone", ["toolkit.models.backbones", "toolkit.models.teachers"])
OBJECTIVES = _root("objective", ["toolkit.models.objectives"])
HEADS = _root("head", ["toolkit.models.heads"])
SUITES = _root("suite", ["toolkit.envs"])

#: Every registry, by the name ``toolkit list`` shows.
REGISTRIES: dict[str, ToolkitRegistry] = {
    "models": MODELS,
    "backbones": BACKBONES,
    "objectives": OBJECTIVES,
    "heads": HEADS,
    "datasets": DATASETS,
    "transforms": TRANSFORMS,
    "suites": SUITES,
    "hooks": HOOKS,
    "metrics": METRICS,
    "loops": LOOPS,
    "visualizers": VISUALIZERS,
    "vis_backends": VISBACKENDS,
    "data_samplers": DATA_SAMPLERS,
    "optim_wrappers": OPTIM_WRAPPERS,
    "param_schedulers": PARAM_SCHEDULERS,
}

_MISSING = re.compile(r"(?P<name>\S+) is not in the (?:(?P<scope>[^:\s]+)::)?(?P<reg>.+?) registry")


def unknown_type_message(name: str, registry: Registry) -> str:
    """One readable message for an unknown ``type`` in ``registry``."""
    known = (
        registry.known_names()
        if isinstance(registry, ToolkitRegistry)
        else sorted(registry._module_dict)
    )
    short = name.split(".", 1)[1] if name.startswith(f"{SCOPE}.") else name
    close = difflib.get_close_matches(short, known, n=5, cutoff=0.4)
    if not close:
        low = short.lower()
        close = [k for k in known if low in k.lower() or k.lower() in low][:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    listing = ", ".join(known) if len(known) <= 40 else f"{len(known)} names (`toolkit list`)"
    return (
        f"unknown type '{name}' in the {registry.scope}::{registry.name} registry.{hint} "
        f"Known: {listing}."
    )


def _find_registry(scope: str | None, name: str) -> Registry | None:
    for reg in REGISTRIES.values():
        if reg.name == name and (scope is None or reg.scope == scope):
            return reg
    roots = (MMENGINE_MODELS, MMENGINE_DATASETS, MMENGINE_HOOKS, MMENGINE_TRANSFORMS)
    for root in roots:
        if root.name == name:
            return root
    return None


def explain_unknown_type(exc: BaseException) -> UnknownComponentError | None:
    """Turn mmengine's 'X is not in the scope::name registry' KeyError into ours."""
    if isinstance(exc, UnknownComponentError):
        return exc
    text = str(exc.args[0]) if exc.args else str(exc)
    m = _MISSING.search(text)
    if not m:
        return None
    reg = _find_registry(m.group("scope"), m.group("reg"))
    if reg is None:
        return None
    prefix = text[: m.start()]  # mmengine prefixes "class `Foo` in module.py: " for nested builds
    return UnknownComponentError(prefix + unknown_type_message(m.group("name"), reg))
