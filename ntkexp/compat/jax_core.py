"""The ``jax.core`` names neural-tangents 0.6.5 uses, resolved on current JAX.

JAX >= 0.6 moved the jaxpr types (``Jaxpr``, ``Var``, ``Literal``,
``Primitive``, ...) from ``jax.core`` to ``jax.extend.core`` and dropped
``get_aval``, ``lattice_join`` and ``DShapedArray`` from the public namespace.
neural-tangents' modules are rewritten on import (see :mod:`ntkexp.compat`) to
read these names from this module instead; JAX itself is left untouched.
"""

import contextlib
from typing import Any

import jax
import jax.core as _core
import jax.extend.core as _ext_core


def __getattr__(name: str) -> Any:
    for module in (_ext_core, _core):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f'jax.core shim for neural-tangents has no {name!r}')


def get_aval(x: Any) -> Any:
    """The abstract value (e.g. ``ShapedArray``) of ``x``."""
    return jax.typeof(x)


def lattice_join(a: Any, b: Any) -> Any:
    """Join of two abstract values (removed from JAX; equal avals join to one).

    Args:
        a: an abstract value.
        b: another abstract value.

    Returns:
        ``a``, if ``a`` and ``b`` agree up to weak typing.

    Raises:
        TypeError: the abstract values differ.
    """
    if a.strip_weak_type() == b.strip_weak_type():
        return a
    raise TypeError(f'Cannot join abstract values {a} and {b}.')


class DShapedArray:
    """Placeholder: dynamic shapes were removed from JAX; nothing is an instance."""


def eval_context_unless_traced(*arrays: Any) -> contextlib.AbstractContextManager:
    """``jax.core.eval_context()``, unless ``arrays`` hold tracers.

    ``nt.predict.gradient_descent_mse`` computes (and caches) the
    eigendecomposition / Cholesky factor of the train-train kernel inside
    ``jax.core.eval_context()``, so that calling the predictor under ``jit``
    does not cache tracers. With JAX's stackless tracing (since 0.4.3x), operating
    on a tracer of an enclosing ``jit`` / ``vmap`` inside ``eval_context`` is an
    ``UnexpectedTracerError``, so a predictor built *inside* a transformation
    (e.g. ``vmap`` over kernel draws) broke. When the kernel is itself a tracer
    the cache lives in that same transformation, so no eval context is needed.

    Args:
        *arrays: the pytrees the computation depends on.

    Returns:
        A context manager.
    """
    leaves = jax.tree_util.tree_leaves(arrays)
    if any(isinstance(x, _core.Tracer) for x in leaves):
        return contextlib.nullcontext()
    return _core.eval_context()
