"""``safe_map`` / ``safe_zip``, formerly in the removed ``jax.util`` module."""

import builtins


def safe_map(f, *args):
  """``map`` that insists all its arguments have the same length."""
  args = list(map(list, args))
  n = len(args[0])
  for arg in args[1:]:
    if len(arg) != n:
      raise ValueError(f'length mismatch: {list(map(len, args))}')
  return list(builtins.map(f, *args))


def safe_zip(*args):
  """``zip`` that insists all its arguments have the same length."""
  args = list(map(list, args))
  n = len(args[0])
  for arg in args[1:]:
    if len(arg) != n:
      raise ValueError(f'length mismatch: {list(map(len, args))}')
  return list(builtins.zip(*args))
