"""Checkpoint loading that works on torch >= 2.6 without an environment variable.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses mmengine's own
checkpoints (they hold ``HistoryBuffer`` objects and numpy arrays in ``message_hub`` / ``meta``),
so ``Runner(resume=True)`` and ``load_from`` fail out of the box on mmengine 0.10.7.

Rather than turning weights-only off globally (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), we replace
mmengine's local-file loader with one that

1. tries ``weights_only=True`` (plain state dicts and third-party weight files load this way), and
2. falls back to a *restricted* full unpickler that resolves only an allow-list of globals
   (torch tensor rebuilding, numpy arrays / dtypes, mmengine's log buffers, builtins
   containers). Anything else in the pickle is refused, never executed.

Third-party weight files loaded through :func:`load_state_dict_file` stay ``weights_only=True``.
"""

from __future__ import annotations

import os
import pickle
import types
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from toolkit.utils.errors import CheckpointError

_SAFE_BUILTINS = {"set", "frozenset", "slice", "range", "complex", "bytearray", "dict", "list",
                  "tuple", "int", "float", "str", "bool"}  # fmt: skip
# module -> allowed names (None = any name in that module).
_ALLOWED: dict[str, set[str] | None] = {
    "collections": {"OrderedDict", "defaultdict", "deque"},
    "__builtin__": _SAFE_BUILTINS,  # protocol-2 pickles name builtins this way
    "builtins": _SAFE_BUILTINS,
    "_codecs": {"encode"},
    "torch._utils": {
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
        "_rebuild_device_tensor_from_numpy",
        "_rebuild_qtensor",
        "_rebuild_sparse_tensor",
        "_rebuild_wrapper_subclass",
        "_rebuild_meta_tensor_no_storage",
        "_rebuild_nested_tensor",
    },
    "torch._tensor": {"_rebuild_from_type_v2"},
    "torch.nn.parameter": {"Parameter"},
    "torch.storage": {"UntypedStorage", "TypedStorage", "_load_from_bytes"},
    "torch": None,  # dtypes, Size, device, *Storage: filtered further in find_class
    "numpy": {"dtype", "ndarray", "float64", "float32", "int64", "int32", "bool_"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.dtypes": None,
    "mmengine.logging.history_buffer": {"HistoryBuffer"},
    "mmengine.config.config": {"ConfigDict", "Config"},
    "addict.addict": {"Dict"},
    "datetime": {"datetime", "date", "timedelta"},
}
_TORCH_FORBIDDEN_PREFIXES = ("load", "save", "_C", "hub", "jit", "ops", "compile", "classes")


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for pickles, limited to public attributes of allow-listed classes.

    mmengine's ``HistoryBuffer`` pickles its statistics table as ``getattr(HistoryBuffer, 'min')``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith("_"):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f"refusing getattr({obj!r}, {name!r}) while loading a checkpoint")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name == "getattr":
            return _safe_getattr
        allowed = _ALLOWED.get(module, ())
        ok = allowed is None or name in allowed
        if module == "torch":
            # dtypes, torch.Size, torch.device and legacy *Storage classes only.
            ok = not name.startswith(_TORCH_FORBIDDEN_PREFIXES) and (
                name in {"Size", "device", "dtype"}
                or name.endswith("Storage")
                or isinstance(getattr(torch, name, None), torch.dtype)
            )
        if not ok:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': not in the toolkit checkpoint allow-list"
            )
        return super().find_class(module, name)


# torch.load takes a pickle *module*; give it one whose Unpickler is restricted.
_restricted_pickle = types.ModuleType("toolkit_restricted_pickle")
_restricted_pickle.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
_restricted_pickle.load = pickle.load  # type: ignore[attr-defined]
_restricted_pickle.__name__ = "pickle"


def _check_file(filename: str) -> None:
    if not os.path.isfile(filename):
        raise CheckpointError(f"checkpoint file not found: {filename}")
    size = os.path.getsize(filename)
    if size == 0:
        raise CheckpointError(f"checkpoint file is empty (0 bytes): {filename}")
    if zipfile.is_zipfile(filename):
        try:
            with zipfile.ZipFile(filename) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"checkpoint file is corrupt ({exc}): {filename}") from None
        if bad is not None:
            raise CheckpointError(f"checkpoint file is corrupt (bad entry '{bad}'): {filename}")


def load_checkpoint_file(filename: str, map_location: Any = "cpu") -> Any:
    """Load a checkpoint written by mmengine / this toolkit, safely.

    Raises :class:`CheckpointError` naming the file when it is missing, empty, truncated or
    holds objects outside the allow-list.
    """
    filename = os.path.expanduser(str(filename))
    _check_file(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass  # mmengine objects inside: retry with the restricted unpickler below
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {filename}: {exc}") from None
    try:
        return torch.load(
            filename,
            map_location=map_location,
            weights_only=False,
            pickle_module=_restricted_pickle,
        )
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"unsafe or corrupt checkpoint {filename}: {exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {filename}: {exc}") from None


def load_state_dict_file(filename: str, key: str | None = None) -> Mapping[str, torch.Tensor]:
    """Load third-party weights (a state dict, possibly nested under ``key``) weights-only."""
    filename = os.path.expanduser(str(filename))
    _check_file(filename)
    try:
        obj = torch.load(filename, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad files
        raise CheckpointError(f"cannot load weights from {filename}: {exc}") from None
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{filename}: expected key '{key}', found {keys}")
        obj = obj[key]
    elif (
        isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping)
    ):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{filename}: expected a state dict, found {type(obj).__name__}")
    return obj


def _mmengine_local_loader(filename: str, map_location: Any) -> Any:
    return load_checkpoint_file(filename, map_location)


def install_checkpoint_loader() -> None:
    """Make mmengine's local-file scheme use :func:`load_checkpoint_file` (idempotent)."""
    CheckpointLoader.register_scheme(prefixes="", loader=_mmengine_local_loader, force=True)


install_checkpoint_loader()
