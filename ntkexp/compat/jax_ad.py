"""``jax.interpreters.ad`` as neural-tangents 0.6.5 expects it, on current JAX.

neural-tangents' ``NtkImplementation.STRUCTURED_DERIVATIVES`` walks the linear
(tangent) program of the network equation by equation. It was written against
JAX 0.4, whose ``ad`` module exposed the pieces of that walk. On current JAX:

* ``ad.linearize(traceable, *primals)`` no longer returns
  ``(out_primals, out_tangent_pvals, jaxpr, consts)``. :func:`linearize`
  rebuilds that result from the public :func:`jax.linearize` and
  :func:`jax.make_jaxpr`. The jaxpr is then put in the form neural-tangents
  expects: call primitives (``jit``, ``remat``, ...) are inlined and the new
  multiple-output ``split`` becomes ``slice`` equations (:func:`_eval_inlined`);
  like the old partial evaluation, only the equations that depend on the
  input tangents are kept (the others are evaluated into constants, dead
  ones dropped; :func:`_hoist_known_and_dce`).
* transposing or differentiating one equation went through
  ``ad.get_primitive_transpose``, ``ad.reducing_transposes``, the removed
  ``Primitive.map_primitive`` flag, the old call-primitive transpose signature
  and ``ad.primitive_jvps``. The transposes of many primitives now live (also
  or only) in the accumulator-based ``fancy_transposes`` table (``slice``,
  ``jit``, ``custom_jvp_call``, bilinear ones, ...), which expects different
  arguments. :func:`transpose_eqn` and :func:`jvp_eqn` replace
  that code with the public :func:`jax.linear_transpose` and :func:`jax.jvp` of
  a function that binds the single equation, so every primitive JAX can
  transpose or differentiate is handled the same way.
* ``ad.config`` and ``ad.source_info_util`` left the module; they are provided
  here from ``jax.config`` and ``jax.extend.source_info_util``.

Every other attribute (``Zero``, ``UndefinedPrimal``, ``add_tangents``,
``is_undefined_primal``, ``add_jaxvals_p``, ...) is JAX's own, read from
``jax.interpreters.ad``.
"""

import functools
from typing import Any, Sequence

import jax
from jax import lax
from jax.extend import source_info_util  # pylint: disable=unused-import
from jax.extend.core import ClosedJaxpr, Jaxpr, JaxprEqn, Literal, Var
from jax.extend.core import primitives as _prims
from jax.interpreters import ad as _ad
import numpy as np

UndefinedPrimal = _ad.UndefinedPrimal
Zero = _ad.Zero
is_undefined_primal = _ad.is_undefined_primal


class _Config:
    """``ad.config.jax_enable_checks``, read from the public ``jax.config``."""

    @property
    def jax_enable_checks(self) -> bool:
        return bool(jax.config.jax_enable_checks)


config = _Config()


def __getattr__(name: str) -> Any:
    if hasattr(_ad, name):
        return getattr(_ad, name)
    raise AttributeError(f'jax.interpreters.ad shim has no {name!r}')


class _PartialVal:
    """The one method of ``pe.PartialVal`` that neural-tangents calls."""

    def __init__(self, known: bool):
        self._known = known

    def is_known(self) -> bool:
        return self._known

    def __repr__(self) -> str:
        return f'_PartialVal(known={self._known})'


def bind_eqn(eqn: JaxprEqn, args: Sequence[Any]) -> Any:
    """Applies the primitive of ``eqn``, with its parameters, to ``args``.

    This is what :func:`jax.core.eval_jaxpr` does for one equation.

    Args:
        eqn: a jaxpr equation; only its primitive and parameters are used, so
            its variables may have other shapes than ``args`` (neural-tangents
            evaluates "trimmed" equations on smaller inputs).
        args: one value per input of the equation.

    Returns:
        The output of the primitive: one array, or a list for primitives with
        several results.
    """
    params = eqn.primitive.get_bind_params(eqn.params)
    if isinstance(params, tuple):  # JAX < 0.7: (subfuns, params).
        subfuns, params = params
        args = (*subfuns, *args)
    with eqn.ctx.manager:
        return eqn.primitive.bind(*args, **params)


def _tangent_dtype(x) -> np.dtype:
    dtype = jax.dtypes.result_type(x)
    if jax.dtypes.issubdtype(dtype, np.inexact):
        return dtype
    return jax.dtypes.float0


def _is_known(v, known: set) -> bool:
    return isinstance(v, Literal) or v in known


# Primitives that only call a sub-jaxpr: their equations are replaced by the
# sub-jaxpr's equations (see :func:`_eval_inlined`).
_INLINED_CALLS = {
    _prims.call_p: 'call_jaxpr',
    _prims.closed_call_p: 'call_jaxpr',
    _prims.custom_jvp_call_p: 'call_jaxpr',
    _prims.jit_p: 'jaxpr',
    _prims.remat_p: 'jaxpr',
}


def _eval_inlined(jaxpr: Jaxpr, consts: Sequence[Any], *args: Any) -> list:
    """Evaluates ``jaxpr`` with call primitives inlined and ``split`` sliced.

    Traced with :func:`jax.make_jaxpr`, this yields the same program written
    with the primitives neural-tangents 0.6.5 can walk:

    * call-like equations (``jit``, ``closed_call``, ``remat``, ...) are
      replaced by their body, so that the structured-derivative rules see the
      primitives inside (neural-tangents handled calls only as opaque
      equations, and current JAX keeps their transposes in the
      accumulator-based ``fancy_transposes``);
    * ``split`` (a multiple-output primitive new since JAX 0.4, replacing a
      sequence of ``slice`` equations; neural-tangents rejects multiple-output
      primitives) is evaluated as one ``slice`` per output.

    Args:
        jaxpr: the jaxpr to evaluate.
        consts: values of its constant variables.
        *args: values of its inputs.

    Returns:
        The list of output values.
    """
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        key = _INLINED_CALLS.get(eqn.primitive)
        if key is not None and key in eqn.params:
            sub = eqn.params[key]
            if isinstance(sub, ClosedJaxpr):
                outs = _eval_inlined(sub.jaxpr, sub.consts, *invals)
            else:
                outs = _eval_inlined(sub, (), *invals)
        elif eqn.primitive is lax.split_p:
            axis = eqn.params['axis']
            starts = np.cumsum((0,) + tuple(eqn.params['sizes']))
            outs = [lax.slice_in_dim(invals[0], int(a), int(b), axis=axis)
                    for a, b in zip(starts[:-1], starts[1:])]
        else:
            out = bind_eqn(eqn, invals)
            outs = out if eqn.primitive.multiple_results else [out]
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def _hoist_known_and_dce(jaxpr: Jaxpr, consts: Sequence[Any]):
    """Evaluates equations not depending on ``jaxpr.invars``; drops dead ones.

    Old JAX's ``ad.linearize`` partially evaluated the JVP, so its linear jaxpr
    only held equations with a tangent input; neural-tangents' backward pass
    relies on that (it never evaluates equations forwards). Tracing the
    function returned by :func:`jax.linearize` may also record equations on
    residuals only (e.g. ``mul 2.0 c``) or instantiated zeros; these are
    evaluated here and their outputs become constants.

    Args:
        jaxpr: the traced linear jaxpr.
        consts: values of ``jaxpr.constvars``.

    Returns:
        ``(jaxpr, consts, known_outputs)`` where ``jaxpr`` holds only the live
        equations that depend on its inputs, ``consts`` the values of its
        (new) constant variables, and ``known_outputs[i]`` says whether output
        ``i`` does not depend on the inputs (it is then removed from
        ``jaxpr.outvars``).
    """
    env = dict(zip(jaxpr.constvars, consts))
    known = set(jaxpr.constvars)
    eqns = []
    for eqn in jaxpr.eqns:
        if not eqn.effects and all(_is_known(v, known) for v in eqn.invars):
            args = [v.val if isinstance(v, Literal) else env[v]
                    for v in eqn.invars]
            out = bind_eqn(eqn, args)
            outs = out if eqn.primitive.multiple_results else [out]
            for v, o in zip(eqn.outvars, outs):
                env[v] = o
                known.add(v)
        else:
            eqns.append(eqn)

    known_out = [_is_known(v, known) for v in jaxpr.outvars]
    outvars = [v for v, k in zip(jaxpr.outvars, known_out) if not k]

    # Dead-code elimination, backwards from the outputs.
    live = {v for v in outvars if isinstance(v, Var)}
    kept = []
    for eqn in reversed(eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            kept.append(eqn)
            live.update(v for v in eqn.invars if isinstance(v, Var))
    kept.reverse()

    constvars = [v for v in env if v in live]
    new_consts = [env[v] for v in constvars]
    if hasattr(jaxpr, 'consts'):
        # JAX >= 0.11 merged ClosedJaxpr into Jaxpr: its constant variables
        # are the leading inputs that have values attached, so replacing
        # `constvars` without `consts` would turn them into ordinary inputs.
        jaxpr = jaxpr.replace(constvars=constvars, eqns=kept, outvars=outvars,
                              consts=new_consts)
    else:
        jaxpr = jaxpr.replace(constvars=constvars, eqns=kept, outvars=outvars)
    return jaxpr, new_consts, known_out


def linearize(traceable, *primals, has_aux: bool = False):
    """Old-signature ``ad.linearize`` for a flat ``lu.WrappedFun``.

    Args:
        traceable: a ``linear_util.WrappedFun`` taking and returning flat lists
            of arrays.
        *primals: the point to linearize at.
        has_aux: must be ``False`` (the only use in neural-tangents).

    Returns:
        ``(out_primals, out_tangent_pvals, jaxpr, consts)``: the primal outputs;
        one partial value per output, known iff its tangent does not depend on
        the input tangents; the linear jaxpr mapping input tangents to the
        unknown output tangents, with only tangent-dependent equations; and the
        values of its constant variables (the residuals).

    Raises:
        NotImplementedError: ``has_aux=True``.
    """
    if has_aux:
        raise NotImplementedError('has_aux=True is not supported.')

    def flat_fn(*args):
        return tuple(traceable.call_wrapped(*args))

    out_primals, f_jvp = jax.linearize(flat_fn, *primals)
    tangent_specs = [jax.ShapeDtypeStruct(np.shape(p), _tangent_dtype(p))
                     for p in primals]
    closed = jax.make_jaxpr(f_jvp)(*tangent_specs)
    closed = jax.make_jaxpr(functools.partial(
        _eval_inlined, closed.jaxpr, closed.consts))(*tangent_specs)
    jaxpr, consts, known = _hoist_known_and_dce(closed.jaxpr, closed.consts)
    pvals = [_PartialVal(k) for k in known]
    return list(out_primals), pvals, jaxpr, consts


def _cast(x, dtype):
    if isinstance(x, Zero) or jax.dtypes.result_type(x) == dtype:
        return x
    return jax.lax.convert_element_type(x, dtype)


def transpose_eqn(eqn: JaxprEqn, cts_in: Any,
                  invals: Sequence[Any]) -> list[Any]:
    """Transposes one linear equation, like ``ad.backward_pass`` did per step.

    Args:
        eqn: a single-output equation, linear in the inputs that are
            :class:`UndefinedPrimal` in ``invals``.
        cts_in: the cotangent of the output (an array or a symbolic
            :class:`Zero`).
        invals: one value per equation input: an :class:`UndefinedPrimal` for
            linear inputs, the known value otherwise.

    Returns:
        One cotangent per input: ``None`` for known inputs, a :class:`Zero` when
        ``cts_in`` is zero, an array otherwise.
    """
    lin = [i for i, x in enumerate(invals) if is_undefined_primal(x)]
    if isinstance(cts_in, Zero):
        return [Zero(x.aval) if is_undefined_primal(x) else None
                for x in invals]

    if (eqn.primitive is lax.reshape_p and lin == [0] and
            eqn.params.get('dimensions') is None):
        # neural-tangents special-cases `reshape`: its Jacobian is taken with a
        # cotangent of the *input* shape. JAX 0.4's transpose rule reshaped any
        # cotangent to the operand shape; do the same (linear_transpose would
        # insist on the output shape).
        return [lax.reshape(cts_in, invals[0].aval.shape)] + [None] * (
            len(invals) - 1)

    def f(*lin_vals):
        args = list(invals)
        for i, v in zip(lin, lin_vals):
            args[i] = v
        return bind_eqn(eqn, args)

    specs = [jax.ShapeDtypeStruct(invals[i].aval.shape, invals[i].aval.dtype)
             for i in lin]
    cts_in = _cast(cts_in, eqn.outvars[0].aval.dtype)
    if eqn.primitive.multiple_results:
        cts_in = [cts_in]
    lin_cts = jax.linear_transpose(f, *specs)(cts_in)
    cts_out = [None] * len(invals)
    for i, ct in zip(lin, lin_cts):
        cts_out[i] = ct
    return cts_out


def jvp_eqn(eqn: JaxprEqn, primals: Sequence[Any],
            tangents: Sequence[Any]) -> Any:
    """Forward-mode derivative of one equation (``ad.primitive_jvps`` of old).

    Args:
        eqn: the equation.
        primals: one value per equation input.
        tangents: one tangent per input; symbolic :class:`Zero` ones are held
            fixed.

    Returns:
        The output tangent (an array, or a list for multiple-result primitives).
    """
    nz = [i for i, t in enumerate(tangents) if not isinstance(t, Zero)]

    def f(*nz_vals):
        args = list(primals)
        for i, v in zip(nz, nz_vals):
            args[i] = v
        return bind_eqn(eqn, args)

    return jax.jvp(f, tuple(primals[i] for i in nz),
                   tuple(tangents[i] for i in nz))[1]
