"""Structured-derivative rules for primitives JAX added after neural-tangents 0.6.5.

neural-tangents' ``STRUCTURED_DERIVATIVES`` NTK looks up, for every primitive
that consumes a parameter in the linearized network, a *structure rule* (which
input/output axes of the primitive Jacobian are constant-diagonal, so they can
be trimmed to size 1) and a *Jacobian rule* (the trimmed Jacobian itself).
Without them it falls back to a dense ``jacfwd``/``jacrev`` of the primitive and
warns ``No Jacobian rule found for X``: correct, but the speed-up is lost.

The rules of 0.6.5 still apply to today's ``dot_general``,
``conv_general_dilated``, ``mul``, ``add``, ``add_any``, ``reshape``,
``transpose``, ``broadcast_in_dim``, ``reduce_sum``, ``convert_element_type``,
``copy_p`` ... . The only gap created by JAX itself is ``split`` (new since 0.4),
which replaced the ``slice`` equations ``jnp.split`` used to emit;
:mod:`ntkexp.compat.jax_ad` lowers ``split`` back to ``slice`` (neural-tangents
cannot walk multiple-output primitives), and this module gives ``slice`` a
structure, Jacobian and parameter-trimming rule.

:func:`register` is called at the end of neural-tangents' ``rules`` module (an
import-time rewrite in :mod:`ntkexp.compat`); nothing in JAX is modified.
"""

from typing import Any

import jax.numpy as jnp
from jax import lax


def _strides(params: dict[str, Any], ndim: int) -> tuple[int, ...]:
    return tuple(params['strides'] or (1,) * ndim)


def _slice_s(eqn, idx, invals, cts_in):
    """``slice``: axes taken whole are constant-diagonal (the identity)."""
    del cts_in
    # Imported here: this module is loaded while neural-tangents' `rules` is.
    from neural_tangents._src.utils import rules  # pylint: disable=C0415
    inval = invals[idx]
    params = eqn.params
    strides = _strides(params, inval.ndim)
    whole = tuple(
        i for i in range(inval.ndim)
        if (params['start_indices'][i] == 0 and
            params['limit_indices'][i] == inval.shape[i] and strides[i] == 1))
    return rules.Structure(
        out_trace=whole,
        in_trace=whole,
        in_trace_idxs=(idx,),
        out_diagonal=(),
        in_diagonal=(),
    )


def _slice_j(eqn, idx, invals, cts_in):
    """``slice`` Jacobian: the identity ``in.shape * 2`` sliced like the input."""
    del cts_in
    inval = invals[idx]
    ndim = inval.ndim
    params = eqn.params
    eye = jnp.eye(inval.size, dtype=inval.dtype).reshape(inval.shape * 2)
    return lax.slice(
        eye,
        tuple(params['start_indices']) + (0,) * ndim,
        tuple(params['limit_indices']) + tuple(inval.shape),
        _strides(params, ndim) + (1,) * ndim)


def _slice_e(params, idx, trimmed_invals, trimmed_cts_in):
    """Shrinks ``limit_indices`` of the axes trimmed to size 1 by ``_slice_s``."""
    del trimmed_cts_in
    shape = trimmed_invals[idx].shape
    params['limit_indices'] = tuple(
        min(limit, size) for limit, size in zip(params['limit_indices'], shape))
    return params


def register(structure_rules: dict, jacobian_rules: dict,
             eqn_params_rules: dict) -> None:
    """Adds the rules of this module to neural-tangents' rule tables.

    Args:
        structure_rules: ``rules.STRUCTURE_RULES``.
        jacobian_rules: ``rules.JACOBIAN_RULES``.
        eqn_params_rules: ``rules.EQN_PARAMS_RULES``.
    """
    structure_rules.setdefault(lax.slice_p, _slice_s)
    jacobian_rules.setdefault(lax.slice_p, _slice_j)
    eqn_params_rules.setdefault(lax.slice_p, _slice_e)
