"""A small model registry: families register themselves; everything else enumerates it.

``create_model(name, input_shape, **options)`` checks the options against the family's
constructor, so a typo in a TOML file or a flag that a family does not take is a clear error.
Each option's type comes from the constructor's annotation (``int``, ``float``, ``str | None``,
``Sequence[int]``), so ``layers = 64`` in a TOML file is refused with one line instead of failing
deep inside PyTorch; :func:`check_model_config` runs the same checks before any data is read.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aekit.errors import AekitError, key_text

if TYPE_CHECKING:  # for annotations only: the CLI imports this module without torch
    from aekit.models.base import Autoencoder

    _Family = TypeVar("_Family", bound=type[Autoencoder])

_MODELS: dict[str, tuple[type[Autoencoder], str]] = {}


def register_model(name: str, description: str) -> Callable[[_Family], _Family]:
    """Class decorator: register an ``Autoencoder`` subclass as the model family ``name``.

    Args:
        name: The family's name, as ``--model`` and ``[model] name`` give it.
        description: One line for ``aekit models``.

    Returns:
        The decorator, which returns the class unchanged (with ``family`` set to ``name``).

    Raises:
        ValueError: A family of that name is already registered.
    """
    def wrap(cls: _Family) -> _Family:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        cls.family = name
        _MODELS[name] = (cls, description)
        return cls

    return wrap


# The built-in families, found the way a plug-in would be: by module name. The families import
# this module to register themselves, so importing them by name keeps the dependency one-way.
BUILTIN_FAMILIES = ("aekit.models.linear", "aekit.models.mlp", "aekit.models.conv", "aekit.models.variational",
                     "aekit.models.ladder", "aekit.models.mae")


def _ensure_loaded() -> None:
    import importlib

    for module in BUILTIN_FAMILIES:
        importlib.import_module(module)


def list_models() -> dict[str, str]:
    """Registered family names with their one-line descriptions."""
    _ensure_loaded()
    return {k: d for k, (_, d) in _MODELS.items()}


def model_class(name: Any) -> type[Autoencoder]:
    _ensure_loaded()
    if not isinstance(name, str) or name not in _MODELS:
        raise AekitError(f"unknown model {name!r}; known: {', '.join(_MODELS)} (see `aekit models`)")
    return _MODELS[name][0]


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    params = inspect.signature(model_class(name).__init__).parameters
    return {k: p for k, p in params.items() if k not in ("self", "input_shape")}


def model_options(name: str) -> list[str]:
    return list(_parameters(name))


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


# What each annotation accepts, and how to say it to a user. Annotations are strings (the model
# modules use ``from __future__ import annotations``).
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "None": (lambda v: v is None, "nothing"),
    "int": (_is_int, "a whole number"),
    "float": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "Sequence[int]": (lambda v: isinstance(v, list | tuple) and all(_is_int(x) for x in v),
                      "a list of whole numbers such as [1000, 500]"),
}


def check_option_type(name: str, key: str, value: Any, annotation: Any) -> None:
    """Refuse a value whose type the constructor's annotation does not allow (unknown annotations pass)."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    if any(k not in _KINDS for k in kinds):
        return
    if not any(_KINDS[k][0](value) for k in kinds):
        want = " or ".join(_KINDS[k][1] for k in kinds if k != "None")
        raise AekitError(f"model {name!r}: option {key} = {value!r:.60} has the wrong type; it takes {want}")


def check_options(name: str, options: dict[str, Any]) -> None:
    """Known option names and the types their constructor takes (ranges are the constructor's)."""
    params = _parameters(name)
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise AekitError(f"model {name!r} has no option {', '.join(map(key_text, unknown))}; "
                         f"its options: {', '.join(params)}")
    for key, value in options.items():
        check_option_type(name, key, value, params[key].annotation)


# A [model] key that no constructor takes: ``conditional = true`` (``--conditional``) conditions a
# family that has an ``n_classes`` option on the labels, its class count read from the dataset when
# the model is built (:func:`constructor_options`), so that one recipe fits any labelled dataset.
CONDITIONAL = "conditional"


def conditional_families() -> list[str]:
    """The families that can be conditioned on labels: those with an ``n_classes`` option."""
    return [name for name in list_models() if "n_classes" in _parameters(name)]


def _check_conditional(name: str, model: dict[str, Any]) -> bool:
    value = model.get(CONDITIONAL, False)
    if not isinstance(value, bool):
        raise AekitError(f"model option conditional = {value!r:.40} must be true or false")
    if value and "n_classes" not in _parameters(name):
        raise AekitError(f"--conditional (conditional = true): model {name!r} takes no labels; "
                         f"conditional models: {', '.join(conditional_families())}")
    if value and "n_classes" in model:
        raise AekitError("give conditional = true (the dataset's class count) or n_classes, not both")
    return value


def check_model_config(model: dict[str, Any]) -> None:
    """A config's ``[model]`` table, checked without building the model: the family, its options'
    names and types, and the ranges that do not depend on the data (unit counts, weights, and each
    family's own options, through its ``check_config``)."""
    from aekit.models.base import check_option_ranges

    name = model.get("name", "mlp")
    _check_conditional(name, model)
    options = {k: v for k, v in model.items() if k not in ("name", "input_shape", CONDITIONAL)}
    check_options(name, options)
    getattr(model_class(name), "check_config", check_option_ranges)(options)


def constructor_options(model: dict[str, Any], n_classes: Callable[[], int]) -> dict[str, Any]:
    """The constructor options of a checked ``[model]`` table: ``conditional = true`` becomes
    ``n_classes``, which ``n_classes()`` reads from the data (called only then)."""
    options = {k: v for k, v in model.items() if k not in ("name", "input_shape", CONDITIONAL)}
    if _check_conditional(model.get("name", "mlp"), model):
        options["n_classes"] = n_classes()
    return options


def create_model(name: str, input_shape: tuple[int, ...], **options: Any) -> Autoencoder:
    """Build a registered model for samples of ``input_shape``; unknown options are errors."""
    cls = model_class(name)
    check_options(name, options)
    return cls(tuple(input_shape), **options)
