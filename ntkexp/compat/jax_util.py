"""``safe_map`` / ``safe_zip``, formerly in the removed ``jax.util`` module."""

import builtins
from typing import Any, Callable, Iterable


def _check_lengths(args: list[list[Any]]) -> None:
    n = len(args[0])
    for arg in args[1:]:
        if len(arg) != n:
            raise ValueError(f'length mismatch: {list(map(len, args))}')


def safe_map(f: Callable[..., Any], *args: Iterable[Any]) -> list[Any]:
    """``map`` into a list that insists all its arguments have one length.

    Args:
        f: the function to apply.
        *args: iterables of equal length.

    Returns:
        ``[f(*xs) for xs in zip(*args)]``.

    Raises:
        ValueError: the iterables differ in length.
    """
    args = [list(a) for a in args]
    _check_lengths(args)
    return list(builtins.map(f, *args))


def safe_zip(*args: Iterable[Any]) -> list[tuple[Any, ...]]:
    """``zip`` into a list that insists all its arguments have one length.

    Args:
        *args: iterables of equal length.

    Returns:
        ``list(zip(*args))``.

    Raises:
        ValueError: the iterables differ in length.
    """
    args = [list(a) for a in args]
    _check_lengths(args)
    return list(builtins.zip(*args))
