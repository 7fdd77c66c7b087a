"""The model zoo's registry: every chapter adds its architecture under a name (a *kind*).

A kind is registered with a decorator on a builder, a class or function that accepts
``vocab_size, d_model, n_layers, n_heads`` as keywords plus its own options::

    @register_model("hawk")
    class Hawk(nn.Module):
        def __init__(self, *, vocab_size, d_model, n_layers, n_heads, **options): ...

and is then built by name with :func:`build_model`. The module defining a kind must be imported
for it to be registered: :mod:`linattn_edu.models` imports the zoo's modules.

The experiments compare *families* (a mechanism and how it is drawn: ``"attention"``,
``"sliding_window"``, ``"linear_elu"``, ``"hawk"``, ...; several families may share a kind, e.g.
the MQAR models of :mod:`linattn_edu.experiments.mqar_sweep` build softmax, sliding-window and
linear attention all as ``"based"`` stacks). Each model module declares its families' label,
colour and marker with :func:`register_family`; plots and tables read them from
:data:`FAMILY_INFO` (:func:`family_info`) instead of keeping their own per-family tables.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

from torch import nn

from ..checks import check_int

__all__ = ["register_model", "build_model", "available_models", "MODEL_REGISTRY", "FamilyInfo", "FAMILY_INFO",
           "register_family", "family_info"]

#: kind name -> builder (a class or function returning an ``nn.Module``).
#:
#: :meta hide-value:
MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

B = TypeVar("B", bound=Callable[..., nn.Module])


def register_model(kind: str) -> Callable[[B], B]:
    """Decorator: register a model builder under ``kind`` (e.g. ``"transformer"``, ``"hawk"``).

    Raises:
        ValueError: ``kind`` is not a non-empty string, or is already registered to another builder.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty str, got {kind!r}")

    def decorator(builder: B) -> B:
        if not callable(builder):
            raise TypeError(f"register_model({kind!r}) must decorate a class or function, got {builder!r}")
        existing = MODEL_REGISTRY.get(kind)
        same = existing is not None and (
            getattr(existing, "__qualname__", None) == getattr(builder, "__qualname__", None)
            and getattr(existing, "__module__", None) == getattr(builder, "__module__", None)
        )
        if existing is not None and not same:  # re-registering the same builder (a reload) is fine
            raise ValueError(f"model kind {kind!r} is already registered to {existing!r}")
        MODEL_REGISTRY[kind] = builder
        return builder

    return decorator


def available_models() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(MODEL_REGISTRY)


def _check_size(value: Any, name: str) -> int:
    return check_int(value, name, minimum=1)  # NumPy integer scalars welcome, bools refused


def build_model(
    kind: str, *, vocab_size: int, d_model: int, n_layers: int, n_heads: int, **options: Any
) -> nn.Module:
    """Build a zoo model by name.

    Args:
        kind: a registered kind, see :func:`available_models` (``"transformer"``; later chapters
            add ``"linear"``, ``"based"``, ``"hawk"``, ``"griffin"``, ``"linearized"``).
        vocab_size: number of token ids; the model maps ``(B, T)`` int64 tokens to
            ``(B, T, vocab_size)`` logits.
        d_model: width of the residual stream.
        n_layers: number of residual blocks.
        n_heads: number of attention heads (or recurrence heads, for recurrent kinds).
        **options: kind-specific options (for ``"transformer"`` see
            :class:`~linattn_edu.models.transformer.TransformerConfig`).

    Returns:
        The model, with ``model.kind`` and ``model.config`` set, in float32 on the CPU.

    Raises:
        ValueError: an unknown ``kind`` (the message lists the registered ones), a non-positive
            size, or an option the kind rejects.
    """
    if not isinstance(kind, str) or kind not in MODEL_REGISTRY:
        raise ValueError(f"kind must be one of {available_models()}, got {kind!r}")
    sizes = {
        "vocab_size": _check_size(vocab_size, "vocab_size"),
        "d_model": _check_size(d_model, "d_model"),
        "n_layers": _check_size(n_layers, "n_layers"),
        "n_heads": _check_size(n_heads, "n_heads"),
    }
    model = MODEL_REGISTRY[kind](**sizes, **options)
    if not isinstance(model, nn.Module):
        raise TypeError(f"the builder of {kind!r} returned {type(model).__name__}, not an nn.Module")
    if getattr(model, "kind", None) is None:
        model.kind = kind
    return model


# ----------------------------------------------------------------------------------------------
# Families: how the experiments name and draw each mechanism
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FamilyInfo:
    """How a family is shown in every plot and table of the book.

    Attributes:
        label: its display name (the mechanism's name in Chapter 8's comparison).
        color: a matplotlib colour.
        marker: a matplotlib marker.
    """

    label: str
    color: str
    marker: str


#: family name -> :class:`FamilyInfo`, filled by :func:`register_family` in the model modules.
#:
#: :meta hide-value:
FAMILY_INFO: dict[str, FamilyInfo] = {}


def register_family(name: str, *, label: str, color: str, marker: str) -> FamilyInfo:
    """Declare a family's label, colour and marker (see the module docstring).

    Raises:
        ValueError: a field is not a non-empty string, or ``name`` is already registered with
            other values.
    """
    for field, value in (("name", name), ("label", label), ("color", color), ("marker", marker)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{field} must be a non-empty str, got {value!r}")
    info = FamilyInfo(label, color, marker)
    existing = FAMILY_INFO.get(name)
    if existing is not None and existing != info:  # re-registering the same values (a reload) is fine
        raise ValueError(f"family {name!r} is already registered as {existing}")
    FAMILY_INFO[name] = info
    return info


def family_info(name: str) -> FamilyInfo:
    """The :class:`FamilyInfo` of a registered family.

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered ones).
    """
    if not isinstance(name, str) or name not in FAMILY_INFO:
        raise ValueError(f"family must be one of {sorted(FAMILY_INFO)}, got {name!r}")
    return FAMILY_INFO[name]
