"""Empirical NTK from per-layer inputs and output cotangents ("layer taps").

The empirical NTK ``Theta(x, x') = sum_W <df(x)/dW, df(x')/dW>`` (Jacot et
al. 2018, Eq. 2; Lee et al. 2020, Sec. 2) needs, for each image ``x`` and logit
``k``, the gradient of ``f_k(x)`` with respect to every weight. For a
convolution ``y = conv(a, W)`` that gradient is ``sum_p patch_p(a) g_p^T``,
the layer input's patches against the cotangent ``g = df_k/dy`` at each output
position ``p``; for a dense layer on one vector it is the outer product
``a g^T``, whose inner products factor as ``<a, a'> <g, g'>``. Novak et al.
2022 ("Fast Finite Width Neural Tangent Kernel", Sec. 3-4) call using this
structure *structured derivatives*.

Neural-tangents' own ``STRUCTURED_DERIVATIVES`` rewrites the whole
Jacobian-vector-product graph; ``JACOBIAN_CONTRACTION`` vmaps ``jacrev`` over
the images, so XLA forms every per-image convolution weight gradient as one
batch-grouped convolution, its slowest kind. This module instead

1. traces ``apply_fn`` once (``jax.make_jaxpr``) and finds its *taps*: the
   convolutions (``conv_general_dilated``, no feature or batch groups) and
   matrix products (``dot_general``, no batch dimensions) that read a weight
   directly, each weight read by exactly one of them;
2. re-evaluates the traced program with a zero perturbation ``eps`` added to
   each tap's output and the tap's input recorded, vmapped over the images;
3. takes one backward pass per logit (the logits vmapped) with respect to the
   ``eps`` (the cotangents ``g`` at every tap) and to per-image copies of the
   remaining leaves (biases, anything not matched), which need no
   weight-gradient products at all;
4. forms each convolution's per-image weight gradients as batched matrix
   products of ``im2col`` patches and cotangents (dense layers on single
   vectors: the factored inner products), and contracts them.

With ``convolutions='tf32x3'`` (GPUs) the network's float32 convolutions in
steps 2-3 run as three TF32 tensor-core products each
(:mod:`ntkexp.tf32x3_conv`): on an H100 the backward passes are mostly float32
cuDNN convolutions (``results/bench/session16/``).

Every leaf not matched in step 1 is still exact: its per-image gradients come
from step 3, like neural-tangents' Jacobian contraction does them. The result
equals ``nt.empirical_ntk_fn(apply_fn, vmap_axes=0, trace_axes=...)`` (tested
to float64 precision in ``tests/test_structured_ntk.py``).

Requirements: ``apply_fn(params, x)`` treats the images of a batch
independently (as every stax network does; ``vmap_axes=0`` in
neural-tangents) and returns ``(batch, logits)``. Matrix products follow
``jax_default_matmul_precision``, as neural-tangents' do (``ntkexp run`` sets
``highest``; JAX's GPU default is TF32).

Speed (``make bench``) on the 2-core CPU, WRN-10-4 on 32x32x3 images: 2.75x,
2.72x and 3.20x Jacobian contraction at 8, 16 and 32 images in the fifth
session (``results/bench/session5/``; neural-tangents' structured derivatives
1.9x, 1.7x, 2.0x); 3.20x at 16 and 2.24x-2.60x at 32 in the eleventh
(``results/bench/session11/``), Jacobian contraction's own time varying by
a third between runs. That is about the time of the backward passes plus
the summed weight gradients (``WEIGHT_GRADIENTS`` in :mod:`ntkexp.bench`).
On one H100 (16 images 64x64, exact float32 products): 2.56x-2.64x, 89% of
the speed of that bound (2.86x), the backward passes alone 3.98x
(``results/bench/session14/``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jex_core

from ntkexp import backend, tf32x3_conv

PyTree = Any

#: Primitives whose weight operand is tapped (step 1 of the module docstring).
TAPPABLE = ('conv_general_dilated', 'dot_general')


@dataclasses.dataclass(frozen=True)
class Tap:
    """One weight-reading operation of the traced network.

    Attributes:
        eqn_index: position of the operation in the traced program.
        leaf: index of the weight among the flattened parameter leaves.
        weight_operand: 0 or 1, which operand of the operation is the weight.
        kind: ``'conv'``, ``'dense_vector'`` (a dot product whose non-weight
            operand is one vector per image: gradients are outer products)
            or ``'dense'`` (any other ``dot_general``).
    """
    eqn_index: int
    leaf: int
    weight_operand: int
    kind: str


def _uses(jaxpr: jex_core.Jaxpr) -> dict:
    """Number of reads of each variable (operations and outputs)."""
    count: dict = {}
    for eqn in jaxpr.eqns:
        for var in eqn.invars:
            if not isinstance(var, jex_core.Literal):
                count[var] = count.get(var, 0) + 1
    for var in jaxpr.outvars:
        if not isinstance(var, jex_core.Literal):
            count[var] = count.get(var, 0) + 1
    return count


def find_taps(jaxpr: jex_core.Jaxpr, n_leaves: int) -> list[Tap]:
    """The taps of a program whose first ``n_leaves`` inputs are the weights.

    A weight is tapped when its only read is as one operand of a
    ``conv_general_dilated`` without groups or a ``dot_general`` without
    batch dimensions whose other operand is not a weight.
    """
    leaf_of = {var: i for i, var in enumerate(jaxpr.invars[:n_leaves])}
    uses = _uses(jaxpr)
    taps = []
    for index, eqn in enumerate(jaxpr.eqns):
        name = eqn.primitive.name
        if name not in TAPPABLE or len(eqn.invars) != 2:
            continue
        is_leaf = [not isinstance(v, jex_core.Literal) and v in leaf_of
                   for v in eqn.invars]
        if sum(is_leaf) != 1:
            continue
        operand = is_leaf.index(True)
        weight = eqn.invars[operand]
        if uses.get(weight, 0) != 1:
            continue
        if name == 'conv_general_dilated':
            if (operand != 1 or eqn.params['feature_group_count'] != 1
                    or eqn.params['batch_group_count'] != 1):
                continue
            kind = 'conv'
        else:
            (contract, batch) = eqn.params['dimension_numbers']
            if batch[0] or batch[1]:
                continue
            other = eqn.invars[1 - operand].aval.shape
            other_contract = contract[1 - operand]
            free = [d for i, d in enumerate(other) if i not in other_contract]
            kind = 'dense_vector' if int(np.prod(free)) == 1 else 'dense'
        taps.append(Tap(index, leaf_of[weight], operand, kind))
    return taps


def trace_taps(apply_fn: Callable, params: PyTree, x: Any
               ) -> tuple[jex_core.ClosedJaxpr, list, list[Tap]]:
    """``apply_fn`` traced on one image of ``x``'s shape (``x`` may be
    abstract): the program, the flattened parameters and the taps."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    single = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    closed = jax.make_jaxpr(lambda ls, image: apply_fn(
        jax.tree_util.tree_unflatten(treedef, ls), image))(leaves, single)
    return closed, leaves, find_taps(closed.jaxpr, len(leaves))


def has_convolution_taps(apply_fn: Callable, params: PyTree, x: Any) -> bool:
    """Whether ``apply_fn`` has a tapped convolution: where this module beats
    neural-tangents' structured derivatives (CNN-GAP 2.2x, WRN-10-1 1.4x on
    the CPU, ``results/bench/session5/structured_ntk_timings.csv``); on
    dense-only networks the two are about equally fast (FC: 0.99-1.04x)."""
    return any(tap.kind == 'conv' for tap in trace_taps(apply_fn, params, x)[2])


def backward_per_logit(fn: Callable, primals: Sequence[Any],
                       has_aux: bool = False) -> Any:
    """One backward pass of ``fn`` per logit, the logits vmapped.

    ``fn(*primals)`` returns ``(batch, logits)`` (and an auxiliary output if
    ``has_aux``); logit ``k``'s one-hot cotangent covers every image.

    Returns:
        The cotangents of ``primals``, each stacked over the logits
        (``(K, ...)``), and the auxiliary output if ``has_aux``.
    """
    logits, vjp, *aux = jax.vjp(fn, *primals, has_aux=has_aux)
    k = logits.shape[-1]
    eye = jnp.eye(k, dtype=logits.dtype)
    cotangents = jax.vmap(vjp)(jnp.broadcast_to(eye[:, None, :],
                                                (k,) + logits.shape))
    return (cotangents, *aux) if has_aux else cotangents


def bind(eqn: jex_core.JaxprEqn, invals: Sequence[Any]) -> Any:
    """Apply one traced operation to ``invals`` (as ``jax.core.eval_jaxpr``;
    ``get_bind_params`` returned ``(subfuns, params)`` before JAX 0.6)."""
    bound = eqn.primitive.get_bind_params(eqn.params)
    subfuns, params = bound if isinstance(bound, tuple) else ((), bound)
    with eqn.ctx.manager:
        return eqn.primitive.bind(*subfuns, *invals, **params)


def bind_with_convolutions(eqn: jex_core.JaxprEqn, invals: Sequence[Any],
                           convolutions: str = 'default') -> Any:
    """:func:`bind`, float32 convolutions as :data:`CONVOLUTIONS` says
    (``'tf32x3'``: :func:`ntkexp.tf32x3_conv.conv_tf32x3`, forward and
    input transpose). Only the program's own operations: a convolution inside
    a nested call (``jit``, ``remat``) keeps its precision, as it stays
    untapped (exact, not faster)."""
    if (convolutions == 'tf32x3'
            and eqn.primitive.name == 'conv_general_dilated'
            and tf32x3_conv.supported(eqn.params,
                                      [v.dtype for v in invals])):
        return tf32x3_conv.conv_tf32x3(eqn.params)(*invals)
    return bind(eqn, invals)


def evaluate_with_taps(jaxpr: jex_core.Jaxpr, consts: Sequence[Any],
                       args: Sequence[Any], taps: Sequence[Tap],
                       eps: Sequence[Any], convolutions: str = 'default'
                       ) -> tuple[list, list]:
    """Evaluate ``jaxpr`` adding ``eps[t]`` to tap ``t``'s output, its
    convolutions as ``convolutions`` says (:data:`CONVOLUTIONS`).

    Returns:
        The program's outputs and, for each tap, its non-weight operand.
    """
    env: dict = {}

    def read(var):
        return var.val if isinstance(var, jex_core.Literal) else env[var]

    for var, value in itertools.chain(zip(jaxpr.constvars, consts),
                                      zip(jaxpr.invars, args)):
        env[var] = value
    tap_at = {tap.eqn_index: t for t, tap in enumerate(taps)}
    inputs = [None] * len(taps)
    for index, eqn in enumerate(jaxpr.eqns):
        invals = [read(var) for var in eqn.invars]
        out = bind_with_convolutions(eqn, invals, convolutions)
        if index in tap_at:
            t = tap_at[index]
            inputs[t] = invals[1 - taps[t].weight_operand]
            out = out + eps[t]
        outs = out if eqn.primitive.multiple_results else [out]
        for var, value in zip(eqn.outvars, outs):
            if not isinstance(var, jex_core.DropVar):
                env[var] = value
    return [read(var) for var in jaxpr.outvars], inputs


def with_convolutions(fn: Callable, convolutions: str) -> Callable:
    """``fn`` with its float32 convolutions as ``convolutions`` says
    (:data:`CONVOLUTIONS`): traced, then evaluated by
    :func:`bind_with_convolutions`, so its derivatives take them too.
    ``'default'`` returns ``fn`` itself."""
    _check_choice('convolutions', convolutions, CONVOLUTIONS)
    if convolutions == 'default':
        return fn

    def evaluated(*args):
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs, _ = evaluate_with_taps(
            closed.jaxpr, closed.consts, jax.tree_util.tree_leaves(args),
            [], [], convolutions)
        return jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(shape), outs)

    return evaluated


def _merge_image_axis(x: jnp.ndarray, lead: int, batch_axis: int) -> jnp.ndarray:
    """``x`` has ``lead`` leading axes, the vmapped image axis, then one image's
    value whose batch axis ``batch_axis`` has size 1: put the images there."""
    x = jnp.moveaxis(x, lead, lead + batch_axis + 1)
    return jnp.squeeze(x, lead + batch_axis)


def conv_patches(lhs: jnp.ndarray, filter_shape: Sequence[int],
                 params: dict) -> jnp.ndarray:
    """``im2col`` patches of a convolution's input, by padding and slicing.

    (``lax.conv_general_dilated_patches`` gives the same numbers as a grouped
    convolution with a one-hot filter: slower on the CPU, and rounded under
    JAX's TF32 default on GPUs; slicing is exact at any precision.)

    Args:
        lhs: ``(N, *spatial, C)``, channels last.
        filter_shape: the filter's spatial shape.
        params: the ``conv_general_dilated`` parameters (``padding``,
            ``window_strides``, ``lhs_dilation``, ``rhs_dilation``).

    Returns:
        ``(N, *out_spatial, prod(filter_shape), C)``: for each output position
        the input values each filter tap multiplies (exact: no arithmetic).
    """
    strides = params['window_strides']
    lhs_dilation = params['lhs_dilation'] or (1,) * len(filter_shape)
    rhs_dilation = params['rhs_dilation'] or (1,) * len(filter_shape)
    config = [(0, 0, 0)]
    for (low, high), dilation in zip(params['padding'], lhs_dilation):
        config.append((low, high, dilation - 1))
    config.append((0, 0, 0))
    padded = lax.pad(lhs, jnp.zeros((), lhs.dtype), config)
    spatial = padded.shape[1:-1]
    out_shape = [
        (size - (k - 1) * d - 1) // s + 1
        for size, k, d, s in zip(spatial, filter_shape, rhs_dilation, strides)]
    slices = []
    for offset in itertools.product(*(range(k) for k in filter_shape)):
        start = [0] + [o * d for o, d in zip(offset, rhs_dilation)] + [0]
        limit = ([padded.shape[0]]
                 + [st + (n - 1) * s + 1
                    for st, n, s in zip(start[1:-1], out_shape, strides)]
                 + [padded.shape[-1]])
        slices.append(lax.slice(padded, start, limit,
                                (1,) + tuple(strides) + (1,)))
    return jnp.stack(slices, axis=-2)


def conv_factors(tap_input: jnp.ndarray, cotangent: jnp.ndarray,
                 eqn: jex_core.JaxprEqn) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A convolution tap's patches and cotangents, channels last.

    Args:
        tap_input: ``(N, ...)`` the convolution's input in its own layout.
        cotangent: ``(K, N, ...)`` the cotangents of its output, per logit.

    Returns:
        ``(N, P, T, C_in)`` patches (``P`` output positions, ``T`` filter
        taps) and ``(K, N, P, C)`` cotangents: image ``n``'s gradient of
        logit ``k`` is ``sum_p patches[n, p] (x) cotangents[k, n, p]`` (the
        weight's entries permuted).
    """
    lhs_spec, rhs_spec, out_spec = eqn.params['dimension_numbers']
    rhs_shape = eqn.invars[1].aval.shape
    lhs = jnp.transpose(tap_input, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    cot = jnp.transpose(cotangent, (0, *(1 + d for d in (
        out_spec[0], *out_spec[2:], out_spec[1]))))
    patches = conv_patches(lhs, [rhs_shape[d] for d in rhs_spec[2:]],
                           eqn.params)
    n = lhs.shape[0]
    patches = patches.reshape((n, -1) + patches.shape[-2:])
    return patches, cot.reshape(cot.shape[0], n, -1, cot.shape[-1])


def _dense_weight_gradients(tap_input: jnp.ndarray, cotangent: jnp.ndarray,
                            eqn: jex_core.JaxprEqn, tap: Tap,
                            weight: jnp.ndarray) -> jnp.ndarray:
    """Per-image, per-logit weight gradients of a ``dot_general`` tap, as the
    transpose of the product (vmapped: a batched matrix product).

    Args:
        tap_input: ``(N, ...)``, the vmapped image axis first.
        cotangent: ``(K, N, ...)``.
    """
    def product(w, a):
        return bind(eqn, (a, w) if tap.weight_operand == 1 else (w, a))

    def one(a, g):
        _, vjp = jax.vjp(lambda w: product(w, a), weight)
        return vjp(g)[0].reshape(-1)

    per_logit = jax.vmap(one, in_axes=(0, 0))
    return jax.vmap(per_logit, in_axes=(None, 0))(tap_input, cotangent)


#: Multiply-adds one number written to memory and read back costs, in
#: :func:`prefer_position_pairs` (about 200 on the 2-core CPU here, where a
#: WRN's per-image weight gradients of its 8x8 stage took 4x their
#: multiply-adds' time; the choice is not sensitive to it within 2x).
MEMORY_COST = 100


def prefer_position_pairs(n1: int, n2: Optional[int], positions: int,
                          fan_in: int, channels: int, logits: int,
                          traced: bool) -> bool:
    """Whether a convolution's NTK term is cheaper from pairs of positions.

    Per-image weight gradients cost ``K N P F C`` multiply-adds per set of
    ``N`` images, ``K N1 N2 F C`` to contract, and writing and reading the
    ``K N F C`` gradients; contracting pairs of positions instead (Novak et
    al. 2022, Sec. 4) costs ``N1 N2 P^2 (F + K C)`` traced (``K^2 C`` not
    traced) and two ``N1 P x N2 P`` arrays. Pairs win for layers with few
    positions and many channels (the last stage of a WRN).

    Args:
        n1, n2: images on each side (``n2=None``: the same images).
        positions: ``P``, output positions of the layer.
        fan_in: ``F``, filter taps times input channels.
        channels: ``C``, output channels.
        logits: ``K``.
        traced: whether the logits are traced.
    """
    images = n1 if n2 is None else n1 + n2
    n2 = n1 if n2 is None else n2
    per_logit = logits if traced else logits ** 2
    gradients = logits * fan_in * channels * (
        images * positions + n1 * n2 + images * MEMORY_COST)
    pairs = n1 * n2 * positions ** 2 * (
        fan_in + per_logit * channels + (1 + per_logit) * MEMORY_COST)
    return pairs < gradients


def _conv_term(f1: tuple, f2: Optional[tuple], traced: bool,
               contraction: str, precision: Any = None) -> jnp.ndarray:
    """One convolution's NTK term from :func:`conv_factors` of each side
    (``f2=None``: the same images); ``contraction`` and ``precision`` as in
    :func:`structured_ntk_fn`."""
    einsum = functools.partial(jnp.einsum, precision=precision)
    (q1, c1), (q2, c2) = f1, f1 if f2 is None else f2
    k, n1, positions, channels = c1.shape
    n2 = q2.shape[0]
    p1 = q1.reshape(n1, positions, -1)      # (N, P, F): F = taps x C_in
    p2 = q2.reshape(n2, positions, -1)
    if contraction == 'auto':
        pairs = prefer_position_pairs(n1, None if f2 is None else n2,
                                      positions, p1.shape[-1], channels, k,
                                      traced)
    else:
        pairs = contraction == 'pairs'
    if pairs:
        inputs = einsum('ipf,jqf->ipjq', p1, p2)
        if traced:
            cots = einsum('kipc,kjqc->ipjq', c1, c2)
            return einsum('ipjq,ipjq->ij', inputs, cots)
        cots = einsum('kipc,ljqc->ipjqkl', c1, c2)
        return einsum('ipjq,ipjqkl->ijkl', inputs, cots)

    def gradients(p, c):
        n = p.shape[0]
        c = jnp.moveaxis(c, 0, 2).reshape(n, positions, k * channels)
        g = einsum('npf,npx->nfx', p, c)
        return g.reshape(n, -1, k, channels)

    g1 = gradients(p1, c1)
    g2 = g1 if f2 is None else gradients(p2, c2)
    if traced:
        return einsum('ix,jx->ij', g1.reshape(n1, -1),
                      g2.reshape(g2.shape[0], -1))
    return einsum('ifkc,jflc->ijkl', g1, g2)


def _term(kind: str, f1: tuple, f2: Optional[tuple], traced: bool,
          contraction: str, precision: Any = None) -> jnp.ndarray:
    """The NTK term of one tap or leaf, ``(N1, N2)`` summed over logits
    (traced) or ``(N1, N2, K, K)``."""
    if kind == 'conv':
        return _conv_term(f1, f2, traced, contraction, precision)
    einsum = functools.partial(jnp.einsum, precision=precision)
    f2 = f1 if f2 is None else f2
    if kind == 'gradients':       # (K, N, F) per-image, per-logit gradients
        (g1,), (g2,) = f1, f2
        spec = 'kif,kjf->ij' if traced else 'kif,ljf->ijkl'
        return einsum(spec, g1, g2)
    # 'outer': gradients a (x) g, a (N, D) and g (K, N, E): <a, a'> <g, g'>
    (a1, g1), (a2, g2) = f1, f2
    inputs = einsum('id,jd->ij', a1, a2)
    if traced:
        return inputs * einsum('kie,kje->ij', g1, g2)
    return inputs[:, :, None, None] * einsum('kie,lje->ijkl', g1, g2)


def layer_factors(apply_fn: Callable, x: jnp.ndarray, params: PyTree,
                  convolutions: str = 'default') -> tuple[list, int]:
    """Steps 1-3 of the module docstring: every term's factors for ``x``.

    Args:
        apply_fn: as in :func:`structured_ntk_fn`.
        x: ``(N, ...)`` images.
        params: the network's parameters.
        convolutions: the network's float32 convolutions, forward and
            backward (:data:`CONVOLUTIONS`).

    Returns:
        ``(terms, K)``: ``terms`` a list of ``(kind, factors)`` (``'conv'``:
        :func:`conv_factors`; ``'outer'``: inputs ``(N, D)`` and cotangents
        ``(K, N, E)``; ``'gradients'``: per-image, per-logit gradients
        ``(K, N, F)``), ``K`` the number of logits. The terms' contraction
        (step 4) is what :func:`structured_ntk_fn` adds; ``ntkexp.bench``
        times this function alone (``NTKEXP_STRUCTURED_FACTORS``).

    Raises:
        ValueError: an ``apply_fn`` whose output is not one ``(batch,
            logits)`` array.
    """
    closed, leaves, taps = trace_taps(apply_fn, params, x)
    jaxpr = closed.jaxpr
    tapped = {tap.leaf for tap in taps}
    free = [i for i in range(len(leaves)) if i not in tapped]
    if len(jaxpr.outvars) != 1 or jaxpr.outvars[0].aval.ndim != 2:
        raise ValueError(
            'structured_ntk_fn: apply_fn must return one (batch, logits) '
            'array, got ' + ', '.join(str(v.aval) for v in jaxpr.outvars)
            + '; reshape the output or use nt.empirical_ntk_fn')
    n = x.shape[0]
    eps_shapes = [jaxpr.eqns[tap.eqn_index].outvars[0].aval for tap in taps]

    def one_image(free_leaves, eps, image):
        args = list(leaves)
        for i, value in zip(free, free_leaves):
            args[i] = value
        (out,), inputs = evaluate_with_taps(
            jaxpr, closed.consts, args + [image[None]], taps, eps,
            convolutions)
        return out[0], inputs

    def network(free_leaves, eps):
        return jax.vmap(one_image)(free_leaves, eps, x)

    free_copies = [jnp.broadcast_to(leaves[i], (n,) + leaves[i].shape)
                   for i in free]
    eps = [jnp.zeros((n,) + a.shape, a.dtype) for a in eps_shapes]
    (free_grads, eps_grads), inputs = backward_per_logit(
        network, (free_copies, eps), has_aux=True)
    k = jaxpr.outvars[0].aval.shape[-1]
    terms = [('gradients', (g.reshape(k, n, -1),)) for g in free_grads]
    for tap, tap_input, cot in zip(taps, inputs, eps_grads):
        eqn = jaxpr.eqns[tap.eqn_index]
        if tap.kind == 'conv':
            lhs_spec, _, out_spec = eqn.params['dimension_numbers']
            terms.append(('conv', conv_factors(
                _merge_image_axis(tap_input, 0, lhs_spec[0]),
                _merge_image_axis(cot, 1, out_spec[0]), eqn)))
        elif tap.kind == 'dense_vector':
            terms.append(('outer', (tap_input.reshape(n, -1),
                                    cot.reshape(k, n, -1))))
        else:
            terms.append(('gradients', (_dense_weight_gradients(
                tap_input, cot, eqn, tap, leaves[tap.leaf]),)))
    return terms, k


CONV_CONTRACTIONS = ('auto', 'gradients', 'pairs')

#: ``products=`` of :func:`structured_ntk_fn`: the dot algorithm of the terms'
#: matrix products (weight gradients and contractions) for float32 factors,
#: on the tensor cores of a GPU, each float32 factor split into narrower parts
#: whose products are summed in float32. ``'tf32x3'``: a TF32 head and tail,
#: ``hi hi + hi lo + lo hi`` (about ``2^-21`` relative per product against
#: float32's ``2^-24``); ``'bf16x6'`` / ``'bf16x9'``: three bfloat16 parts,
#: six or all nine of their products (``'bf16x9'`` about float32's accuracy).
#: On an H100 ``'tf32x3'`` was no faster for the WRN-10-4 of issue 9
#: (``results/bench/session14/``).
PRODUCTS = {'default': None,
            'tf32x3': lax.DotAlgorithmPreset.TF32_TF32_F32_X3,
            'bf16x6': lax.DotAlgorithmPreset.BF16_BF16_F32_X6,
            'bf16x9': lax.DotAlgorithmPreset.BF16_BF16_F32_X9}


#: ``convolutions=`` of :func:`structured_ntk_fn`: the network's own float32
#: convolutions in the forward pass and the backward passes (the cotangents;
#: on an H100 most of the time of issue 9's WRN-10-4, ``results/bench/
#: session14/``). ``'default'``: as traced (``jax_default_matmul_precision``);
#: ``'tf32x3'``: three TF32 tensor-core products each, one cuDNN call with
#: three times the input channels (:mod:`ntkexp.tf32x3_conv`, about
#: ``2^-21`` relative per product).
CONVOLUTIONS = ('default', 'tf32x3')


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f'{name}={value!r}: expected one of {tuple(choices)}')


def _check_products(products: str) -> None:
    _check_choice('products', products, PRODUCTS)


def _needs_gpu(name: str, value: str, dtype: Any) -> bool:
    """Whether a tensor-core ``name=value`` applies to factors of ``dtype``
    (float32 only); raises off a GPU, where nothing has tensor cores."""
    if value == 'default' or jnp.dtype(dtype) != jnp.float32:
        return False
    if backend.target_backend() != 'gpu':
        raise ValueError(
            f"{name}='{value}' needs a GPU (tensor cores); this "
            f"backend is {backend.target_backend()!r}: use {name}='default'")
    return True


def products_precision(products: str, dtype: Any) -> Any:
    """The ``precision=`` of the terms' products for factors of ``dtype``.

    Raises:
        ValueError: an unknown ``products``, or one other than
            ``'default'`` on a backend other than a GPU (the CPU's dot
            products take no such algorithms).
    """
    _check_products(products)
    return PRODUCTS[products] if _needs_gpu('products', products,
                                            dtype) else None


def structured_ntk_fn(apply_fn: Callable, trace_axes: Sequence[int] = (-1,),
                      diagonal_axes: Sequence[int] = (),
                      conv_contraction: str = 'auto',
                      products: str = 'default',
                      convolutions: str = 'default') -> Callable:
    """``kernel(x1, x2, params)``: the empirical NTK by layer taps.

    The same interface and values as ``nt.empirical_ntk_fn(apply_fn,
    trace_axes=trace_axes, vmap_axes=0)``: ``x2=None`` means ``x1``; returns
    ``(N1, N2)`` with ``trace_axes=(-1,)`` (the logits' diagonal blocks
    *averaged*, as neural-tangents does) or ``(N1, N2, K, K)`` with
    ``trace_axes=()``.

    Args:
        apply_fn: ``apply_fn(params, x) -> (N, K)``, images independent.
        trace_axes: ``(-1,)`` (or ``(1,)``) or ``()``.
        diagonal_axes: only ``()``.
        conv_contraction: how each convolution's term is contracted:
            ``'gradients'`` (per-image weight gradients), ``'pairs'`` (pairs
            of positions) or ``'auto'`` (the cheaper in multiply-adds and
            memory traffic, :func:`prefer_position_pairs`).
        products: the terms' matrix products (weight gradients and their
            contractions, not the network's own passes) for float32 inputs:
            ``'default'`` follows ``jax_default_matmul_precision``;
            ``'tf32x3'``, ``'bf16x6'``, ``'bf16x9'`` (GPUs) compute them as
            several tensor-core products each (:data:`PRODUCTS`). Float64
            inputs ignore it.
        convolutions: the network's own convolutions, forward and backward,
            for float32 inputs: ``'default'`` as traced; ``'tf32x3'`` (GPUs)
            three TF32 tensor-core products each (:data:`CONVOLUTIONS`).
            Float64 inputs ignore it.

    Raises:
        NotImplementedError: for other ``trace_axes`` or ``diagonal_axes``.
        ValueError: for an unknown ``conv_contraction``, ``products`` or
            ``convolutions``; (when called) for an ``apply_fn`` whose output
            is not one ``(batch, logits)`` array, or ``products`` or
            ``convolutions`` other than ``'default'`` off a GPU.
    """
    _check_products(products)
    _check_choice('convolutions', convolutions, CONVOLUTIONS)
    _check_choice('conv_contraction', conv_contraction, CONV_CONTRACTIONS)
    trace_axes = tuple(trace_axes)
    if trace_axes not in ((), (-1,), (1,)) or tuple(diagonal_axes):
        raise NotImplementedError(
            'structured_ntk_fn supports trace_axes=(-1,) or () and no '
            f'diagonal_axes (got trace_axes={trace_axes}, diagonal_axes='
            f'{tuple(diagonal_axes)}); use nt.empirical_ntk_fn for others')
    traced = bool(trace_axes)

    def kernel(x1: jnp.ndarray, x2: Optional[jnp.ndarray],
               params: PyTree) -> jnp.ndarray:
        precision = products_precision(products, x1.dtype)
        convs = ('tf32x3' if _needs_gpu('convolutions', convolutions,
                                        x1.dtype) else 'default')
        terms1, logits = layer_factors(apply_fn, x1, params, convs)
        terms2 = ([None] * len(terms1) if x2 is None
                  else layer_factors(apply_fn, x2, params, convs)[0])
        total = sum(_term(kind, f1, f2 and f2[1], traced, conv_contraction,
                          precision)
                    for (kind, f1), f2 in zip(terms1, terms2))
        return total / logits if traced else total

    return kernel


__all__ = ['CONVOLUTIONS', 'CONV_CONTRACTIONS', 'MEMORY_COST', 'PRODUCTS',
           'TAPPABLE', 'Tap', 'backward_per_logit', 'bind_with_convolutions',
           'conv_factors',
           'conv_patches', 'evaluate_with_taps', 'find_taps',
           'has_convolution_taps', 'layer_factors', 'prefer_position_pairs',
           'products_precision',
           'structured_ntk_fn', 'trace_taps', 'with_convolutions']
