"""Reading experiment options that may be given as one value or as a list."""

from __future__ import annotations

import math

from typing import Any, Iterable, Optional

from omegaconf import OmegaConf


def as_list(value: Any, if_none: Optional[Iterable[Any]] = ()) -> Optional[list[Any]]:
    """An option as a list: ``[1, 2]`` and ``(1, 2)`` as they are, ``1`` as ``[1]``.

    Hydra configs hold lists as ``ListConfig``; a sweep or a user may give a
    single value where a list is expected.

    Args:
        value: the option's value.
        if_none: what ``None`` (``null``) stands for: a list of values (copied;
            default empty), or ``None`` to keep ``None`` (the caller's default
            applies).

    Returns:
        A new list, or ``None`` for ``value=None`` with ``if_none=None``.
    """
    if value is None:
        return None if if_none is None else list(if_none)
    if OmegaConf.is_list(value) or isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def time_value(t: Any) -> float:
    """A training time ``t`` as a float: ``null``, ``inf`` and ``infinity``
    are the converged predictor (``math.inf``).

    Raises:
        ValueError: ``t`` is not a number.
    """
    return math.inf if t is None or str(t).lower() in ('inf', 'infinity') else float(t)
