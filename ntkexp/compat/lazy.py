"""Lazy ``neural_tangents.experimental`` (it imports TensorFlow)."""

import importlib


def experimental_getattr(name):
  """Module ``__getattr__`` for ``neural_tangents``: loads ``experimental`` on use."""
  if name == 'experimental':
    return importlib.import_module('neural_tangents.experimental')
  raise AttributeError(f"module 'neural_tangents' has no attribute {name!r}")
