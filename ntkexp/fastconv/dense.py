"""NNGP / NTK recursion of deep fully connected networks, one compiled layer.

neural-tangents composes a network's ``kernel_fn`` layer by layer, so a jitted
kernel of a depth-``L`` network is ``L`` copies of the layer's operations, and
XLA's compile time grows faster than ``L``: measured on this repository's
2-core CPU, 16 inputs, float64, the FC ReLU kernel compiles in 3.4 s at depth
16 and 10.8 s at depth 32, and at depth 128 the kernel engine's block sizing
(a few compiles) ran for over ten minutes in 11 GB of memory. The layers of ``model=fc`` and of the dense ``model=resnet`` are
identical after the first, so here one layer is compiled once and iterated by
``jax.lax.scan``: the compile time does not depend on the depth.

The recursion is that of neural-tangents' ``stax`` in the NTK
parameterisation (Jacot et al. 2018, "Neural Tangent Kernel", Eq. 6-7; Lee et
al. 2019), on the input covariance ``x . x' / d``:

* ``Dense(W_std, b_std)``: ``nngp <- W^2 nngp + b^2``, ``ntk <- nngp + W^2
  ntk`` (the new ``nngp``);
* an activation: ``nngp <- E[phi(u) phi(v)]``, ``ntk <- ntk E[phi'(u)
  phi'(v)]`` (:mod:`ntkexp.fastconv.activations`, written as ``stax`` writes
  them), each input's variance by :meth:`Activation.diagonal`;
* a residual block ``x + alpha V phi(W x)`` (Huang et al. 2020, "Why Do Deep
  Residual Networks Generalize Better than Deep Feedforward Networks?"): the
  branch's kernels times ``alpha^2`` added to the trunk's (``FanInSum``
  of independent branches).

Only the NTK parameterisation: the standard one keeps neural-tangents'
``kernel_fn`` (:func:`dense_net` says why).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from ntkexp.fastconv import activations

KERNELS = ('nngp', 'ntk')


@dataclasses.dataclass(frozen=True)
class DenseNet:
    """A deep dense network in the NTK parameterisation.

    ``kind='fc'``: ``Dense(W) -> [activation -> Dense(W)] * depth`` (the
    layers of :func:`ntkexp.models.fc` after ``Flatten``). ``kind='resnet'``:
    ``Dense(V) -> [x + alpha Dense(V)(activation(Dense(W)(x)))] * depth ->
    Dense(V)`` (:func:`ntkexp.models.resnet`, ``layout=flat``), each block's
    sum multiplied by ``trunk_scale`` (``1 / sqrt(1 + alpha^2)`` for
    ``normalize=True``, else 1). ``b_std`` None means no biases.
    """
    kind: str
    depth: int
    W_std: float
    b_std: Optional[float]
    activation: str
    alpha: float = 0.0
    V_std: float = 1.0
    trunk_scale: float = 1.0


def dense_net(*, kind: str, depth: int, W_std: float, b_std: Optional[float],
              activation: str, parameterization: str, alpha: float = 0.0,
              V_std: float = 1.0, trunk_scale: float = 1.0
              ) -> tuple[Optional[DenseNet], str]:
    """The :class:`DenseNet`, or ``(None, reason)`` when it does not apply."""
    if parameterization != 'ntk':
        return None, (f'parameterization={parameterization} (only ntk for the '
                      'dense recursion)')
    if activation not in activations.ACTIVATIONS:
        return None, f'activation={activation}'
    return DenseNet(kind=kind, depth=depth, W_std=W_std, b_std=b_std,
                    activation=activation, alpha=alpha, V_std=V_std,
                    trunk_scale=trunk_scale), ''


def _dense(state, w_std: float, b2: float):
    """``Dense`` on ``(nngp, ntk, v1, v2)``."""
    nngp, ntk, v1, v2 = state
    w2 = w_std ** 2
    nngp = w2 * nngp + b2
    return nngp, nngp + w2 * ntk, w2 * v1 + b2, w2 * v2 + b2


def _activation(state, act: activations.Activation):
    nngp, ntk, v1, v2 = state
    out, dot = act.pair(nngp, v1[:, None], v2[None, :])
    return out, ntk * dot, act.diagonal(v1), act.diagonal(v2)


def _bias_variance(net: DenseNet) -> float:
    return 0.0 if net.b_std is None else net.b_std ** 2


def _layer(net: DenseNet) -> Callable:
    """One repeated layer: ``state -> state`` (scanned ``depth`` times)."""
    act = activations.get(net.activation)
    b2 = _bias_variance(net)
    if net.kind == 'fc':
        def layer(state):
            return _dense(_activation(state, act), net.W_std, b2)
        return layer
    a2 = net.alpha ** 2
    c2 = net.trunk_scale ** 2

    def block(state):
        branch = _dense(_activation(_dense(state, net.W_std, b2), act),
                        net.V_std, b2)
        if c2 == 1.0:
            return tuple(s + a2 * t for s, t in zip(state, branch))
        # A constant c after the sum multiplies every covariance, and the
        # NTK, by c^2 (it has no parameters).
        return tuple(c2 * (s + a2 * t) for s, t in zip(state, branch))
    return block


def kernel(net: DenseNet, x1: jax.Array, x2: Optional[jax.Array] = None,
           get: Sequence[str] = KERNELS) -> dict[str, jax.Array]:
    """Infinite-width NNGP / NTK of ``net`` between ``x1`` and ``x2``.

    Equal (to rounding) to neural-tangents' ``kernel_fn(x1, x2, get)`` of the
    same ``stax`` network. Inputs ``(n, ...)`` are flattened and cast as
    neural-tangents casts them (float64 under ``jax_enable_x64``).

    Args:
        net: the architecture.
        x1: inputs ``(n1, ...)``.
        x2: inputs ``(n2, ...)``, or None for ``k(x1, x1)`` (then exactly
            symmetric).
        get: subset of ``('nngp', 'ntk')``.

    Returns:
        ``{name: (n1, n2) array}`` for each name in ``get``.
    """
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    f1 = jnp.asarray(x1).astype(dtype).reshape(x1.shape[0], -1)
    f2 = f1 if x2 is None else jnp.asarray(x2).astype(dtype).reshape(
        x2.shape[0], -1)
    d = f1.shape[1]
    nngp = f1 @ f2.T / d
    if x2 is None:
        nngp = (nngp + nngp.T) / 2
    state = (nngp, jnp.zeros_like(nngp), jnp.sum(f1 * f1, 1) / d,
             jnp.sum(f2 * f2, 1) / d)
    b2 = _bias_variance(net)
    first_std = net.W_std if net.kind == 'fc' else net.V_std
    state = _dense(state, first_std, b2)
    layer = _layer(net)
    state, _ = jax.lax.scan(lambda s, _: (layer(s), None), state, None,
                            length=net.depth)
    if net.kind == 'resnet':
        state = _dense(state, net.V_std, b2)
    return {g: state[KERNELS.index(g)] for g in get}


def dense_kernel_fn(net: DenseNet, fallback: Callable,
                    check: Optional[Callable[[tuple], None]] = None
                    ) -> Callable:
    """A ``kernel_fn`` computing ``net``'s kernels with :func:`kernel`.

    The calling convention of :func:`ntkexp.fastconv.select.wrap_kernel_fn`:
    ``kernel_fn(x1, x2, get)`` with ``get`` a name or a tuple of ``('nngp',
    'ntk')``; any other call goes to ``fallback`` (neural-tangents'
    ``kernel_fn`` of the same network).
    """
    from ntkexp.fastconv import select  # pylint: disable=g-import-not-at-top

    kernel_fn = select.wrap_kernel_fn(
        lambda x1, x2, names: kernel(net, x1, x2, names), fallback, check,
        accepts=lambda x1, x2: x2 is None or x2.shape[1:] == x1.shape[1:])
    kernel_fn.net = net
    kernel_fn.impl = 'xla'
    kernel_fn.pallas_kind = None
    kernel_fn.pallas_num_warps = None
    return kernel_fn


def with_dense_kernel(triple: tuple[Callable, Callable, Callable],
                      net: Optional[DenseNet], mode: Any, model: str,
                      reason: str = '',
                      check: Optional[Callable[[tuple], None]] = None
                      ) -> tuple[Callable, Callable, Callable]:
    """The model triple with :func:`dense_kernel_fn` where selected.

    Args:
        triple: neural-tangents' ``(init_fn, apply_fn, kernel_fn)``.
        net: the architecture, or None if the recursion does not apply.
        mode: the ``fast_kernel`` option: ``auto`` (the recursion where it
            applies, neural-tangents otherwise), ``true`` (the recursion or an
            error) or ``false`` (neural-tangents).
        model: model name for messages.
        reason: why ``net`` is None.
        check: the model's input-shape check (see :func:`dense_kernel_fn`).

    Raises:
        ValueError: ``fast_kernel=true`` where the recursion does not apply,
            ``pallas*`` (convolutions only) or an unknown value.
    """
    from ntkexp.fastconv import select  # pylint: disable=g-import-not-at-top
    mode = select.parse_mode(model, mode)
    if mode.startswith('pallas'):
        raise ValueError(f"model '{model}': fast_kernel={mode} has Pallas steps "
                         'for convolutions only; dense layers use '
                         'fast_kernel=auto, true or false.')
    if mode == 'false':
        return triple
    if net is None:
        if mode == 'true':
            raise ValueError(f"model '{model}': fast_kernel=true does not "
                             f'support {reason}; use fast_kernel=auto '
                             '(neural-tangents for this network).')
        return triple
    init_fn, apply_fn, kernel_fn = triple
    return init_fn, apply_fn, dense_kernel_fn(net, kernel_fn, check)
