"""Load RLBench pickles without RLBench: a restricted unpickler and stand-in record classes.

``low_dim_obs.pkl`` holds an ``rlbench.demo.Demo`` whose ``_observations`` are
``rlbench.backend.observation.Observation`` objects (plain attribute bags: numpy arrays, floats,
a ``misc`` dict). Unpickling them normally needs RLBench (and its PyRep / CoppeliaSim stack)
importable, and would run whatever a pickle names. :class:`RLBenchUnpickler` instead resolves
exactly these globals:

- ``rlbench.demo.Demo`` -> :class:`RLBenchDemo`, ``rlbench.backend.observation.Observation`` ->
  :class:`RLBenchObservation` (our classes: nothing of RLBench is imported or run);
- the numpy reconstructors an array / scalar / dtype pickle uses (``numpy.ndarray``,
  ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct`` / ``scalar``,
  ``numpy[._]core.numeric._frombuffer``), ``_codecs.encode`` (protocol-2 bytes),
  ``copyreg._reconstructor`` (protocol 0/1 objects, checked to build only our records) and a
  few inert builtin containers.

Any other global (``os.system``, ``builtins.eval``, another RLBench class...) raises
:class:`RLBenchPickleError` naming the file and the global *before* anything is called: a
refused pickle is never executed.
"""

from __future__ import annotations

import copyreg
import importlib
import os
import pickle
from typing import Any

import numpy as np

from toolkit.utils.errors import ToolkitError

__all__ = [
    "RLBenchDataError",
    "RLBenchDemo",
    "RLBenchObservation",
    "RLBenchPickleError",
    "RLBenchUnpickler",
    "load_pickle",
]


class RLBenchDataError(ToolkitError):
    """An RLBench dataset file is missing, corrupt or not in the expected format (names it)."""


class RLBenchPickleError(RLBenchDataError, pickle.UnpicklingError):
    """A pickle names a global outside the allow-list (refused, never executed)."""


class RLBenchObservation:
    """Stand-in for ``rlbench.backend.observation.Observation``: the pickled attributes as-is.

    RLBench's ``Observation`` has ``gripper_open``, ``gripper_pose`` (7: xyz + quaternion xyzw),
    ``gripper_matrix``, ``joint_positions`` / ``joint_velocities`` / ``joint_forces`` (7),
    ``gripper_joint_positions`` (2), ``gripper_touch_forces``, ``task_low_dim_state``, ``misc``
    (dict) and per camera ``<cam>_{rgb,depth,mask,point_cloud}`` (None in stored datasets).
    Forks add fields (e.g. PerAct's ``ignore_collisions``); they are kept too. Missing fields
    read as None.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(
                f"Observation state: expected a dict of attributes, got {type(state).__name__}"
            )
        self.__dict__.update(state)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None  # a field this RLBench version / fork did not record

    def fields(self) -> list[str]:
        """Names of the recorded attributes."""
        return sorted(self.__dict__)

    def __repr__(self) -> str:
        return f"RLBenchObservation({', '.join(self.fields())})"


class RLBenchDemo:
    """Stand-in for ``rlbench.demo.Demo``: a sequence of :class:`RLBenchObservation`.

    Attributes as RLBench pickles them: ``_observations``, ``random_seed`` (numpy RNG state),
    ``num_reset_attempts`` (and whatever a fork adds, e.g. ``variation_number``).
    """

    _observations: list

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(
                f"Demo state: expected a dict of attributes, got {type(state).__name__}"
            )
        self.__dict__.update(state)

    @property
    def observations(self) -> list:
        return list(self.__dict__.get("_observations") or [])

    def __len__(self) -> int:
        return len(self.observations)

    def __getitem__(self, i: int) -> RLBenchObservation:
        return self.observations[i]

    def __repr__(self) -> str:
        return f"RLBenchDemo({len(self)} observations)"


#: RLBench classes -> our records.
_RECORDS: dict[tuple[str, str], type] = {
    ("rlbench.demo", "Demo"): RLBenchDemo,
    ("rlbench.backend.observation", "Observation"): RLBenchObservation,
}

#: Inert builtins a pickle of lists / tuples / dicts / sets may name (protocol 0-2 spell them out).
_BUILTINS = {
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "bytearray": bytearray,
    "complex": complex,
    "object": object,  # only as copyreg._reconstructor's base class (checked there)
}


def _numpy_attr(module_tail: str, name: str) -> Any:
    """``numpy._core.<tail>.<name>`` (numpy >= 2), else ``numpy.core.<tail>.<name>``."""
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{module_tail}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module_tail}.{name}")


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` limited to building our records on ``object``."""
    if cls not in _RECORDS.values() or base is not object or state is not None:
        raise RLBenchPickleError(
            f"refusing copyreg._reconstructor({getattr(cls, '__name__', cls)!r}, "
            f"{getattr(base, '__name__', base)!r}, ...)"
        )
    return copyreg._reconstructor(cls, base, state)


def _resolve(module: str, name: str) -> Any | None:
    """The object an allow-listed global stands for, or None if it is not allowed."""
    if (module, name) in _RECORDS:
        return _RECORDS[(module, name)]
    if module in ("builtins", "__builtin__"):
        return _BUILTINS.get(name)
    if module in ("copyreg", "copy_reg") and name == "_reconstructor":
        return _safe_reconstructor
    if module == "_codecs" and name == "encode":
        import _codecs

        return _codecs.encode  # protocol-2 pickles rebuild bytes as encode(str, 'latin1')
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in (
        "_reconstruct",
        "scalar",
    ):
        return _numpy_attr("multiarray", name)
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _numpy_attr("numeric", name)  # protocol-5 array pickles
    if module == "numpy.dtypes" and name.endswith("DType"):
        # numpy >= 1.25 may name the dtype class of a dtype (e.g. Float64DType): inert classes
        dtypes = importlib.import_module("numpy.dtypes")
        obj = getattr(dtypes, name, None)
        return obj if isinstance(obj, type) and issubclass(obj, np.dtype) else None
    return None


class RLBenchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the allow-list of this module (see its docstring).

    Args:
        file: binary file object. path: its name, for error messages.
    """

    def __init__(self, file: Any, path: str = "<pickle>") -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        obj = _resolve(module, name)
        if obj is None:
            raise RLBenchPickleError(
                f"{self.path}: refusing to load global '{module}.{name}': the pickle names a "
                "class or function outside what RLBench datasets hold (rlbench.demo.Demo, "
                "rlbench.backend.observation.Observation, numpy arrays); nothing was executed"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise RLBenchPickleError(f"{self.path}: refusing persistent id {pid!r}")


def load_pickle(path: str | os.PathLike, what: str = "pickle") -> Any:
    """Unpickle ``path`` with :class:`RLBenchUnpickler`.

    Raises:
        RLBenchDataError: the file is missing, empty, truncated or corrupt, or names a refused
            global (:class:`RLBenchPickleError`); the message names the file and ``what``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RLBenchDataError(f"{path}: expected the {what}, found nothing (missing file)")
    if os.path.getsize(path) == 0:
        raise RLBenchDataError(f"{path}: expected the {what}, found an empty file (0 bytes)")
    try:
        with open(path, "rb") as f:
            return RLBenchUnpickler(f, path).load()
    except RLBenchPickleError as exc:
        msg = str(exc)
        raise RLBenchPickleError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except RecursionError:
        raise RLBenchDataError(f"{path}: corrupt {what} (nesting too deep)") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle raises almost anything
        raise RLBenchDataError(
            f"{path}: corrupt or truncated {what} ({type(exc).__name__}: {exc})"
        ) from None
