"""Lazy ``neural_tangents.experimental`` (it imports TensorFlow)."""

import importlib
from types import ModuleType


def experimental_getattr(name: str) -> ModuleType:
    """Module ``__getattr__`` for ``neural_tangents``: loads ``experimental`` on use.

    Args:
        name: the attribute of ``neural_tangents`` being looked up.

    Returns:
        The ``neural_tangents.experimental`` module (importing TensorFlow).

    Raises:
        AttributeError: ``name`` is not ``'experimental'``.
    """
    if name == 'experimental':
        return importlib.import_module('neural_tangents.experimental')
    raise AttributeError(f"module 'neural_tangents' has no attribute {name!r}")
