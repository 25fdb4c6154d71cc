"""A small model registry: families register themselves; everything else enumerates it.

``create_model(name, input_shape, **options)`` checks the options against the family's
constructor, so a typo in a TOML file or a flag that a family does not take is a clear error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from aekit.errors import AekitError

_MODELS: dict[str, tuple[type, str]] = {}


def register_model(name: str, description: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        cls.family = name
        _MODELS[name] = (cls, description)
        return cls

    return wrap


def _ensure_loaded() -> None:
    import aekit.models  # noqa: F401  (importing registers the built-in families)


def list_models() -> dict[str, str]:
    """Registered family names with their one-line descriptions."""
    _ensure_loaded()
    return {k: d for k, (_, d) in _MODELS.items()}


def model_class(name: str) -> type:
    _ensure_loaded()
    if name not in _MODELS:
        raise AekitError(f"unknown model {name!r}; known: {', '.join(_MODELS)} (see `aekit models`)")
    return _MODELS[name][0]


def model_options(name: str) -> list[str]:
    params = inspect.signature(model_class(name).__init__).parameters
    return [p for p in params if p not in ("self", "input_shape")]


def create_model(name: str, input_shape: tuple[int, ...], **options: Any):
    """Build a registered model for samples of ``input_shape``; unknown options are errors."""
    cls = model_class(name)
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise AekitError(f"model {name!r} has no option {', '.join(unknown)}; its options: {', '.join(allowed)}")
    return cls(tuple(input_shape), **options)
