"""CNN-GP / CNTK recursion of pre-activation Wide ResNets (``model=wrn``).

The same covariance recursion as :mod:`ntkexp.fastconv.recursion`, for the
residual networks of :func:`ntkexp.models.wrn` (Zagoruyko & Komodakis 2016 in
its infinite-width form, as in the Neural Tangents paper's WRN kernels): a
3x3 ``Conv`` stem, then pre-activation basic blocks

* without projection: ``x + Conv(Relu(Conv(Relu(x))))``;
* with projection (a group's first block when channels or resolution change):
  ``r = Relu(x)``, ``Conv_3x3(Relu(Conv_3x3,s(r))) + Conv_1x1,s(r)``,

then ``Relu -> GlobalAvgPool -> Dense``. Two facts make this a small extension
(Arora et al. 2019, Sec. 4; Huang et al. 2020, "Why Do Deep Residual Networks
Generalize Better than Deep Feedforward Networks? -- A Neural Tangent Kernel
Perspective", Eq. 3):

* **Sums of branches add their kernels.** Each branch ends in a convolution
  with fresh zero-mean weights (or is the identity next to such a branch), so
  the cross-covariances vanish and ``Sigma_out = Sigma_main + Sigma_short``,
  ``Theta_out = Theta_main + Theta_short`` (neural-tangents' ``FanInSum``).
* **A strided SAME convolution** maps the covariance to
  ``W^2/k^2 sum_d Sigma[s p + d - lo, s p' + d - lo]`` (both images shifted by
  the same offset, then sub-sampled): :func:`recursion.shift_sum` with a
  stride. It also maps the diagonal ``p = p'`` to itself, so the per-image
  variances that the ReLUs need stay a cheap ``(b, H, W)`` recursion.

The activation is any of :data:`ntkexp.fastconv.activations.ACTIVATIONS`
(``activation``; the walk still calls its step ``relu``). Only the NTK
parameterisation is supported; other WRNs keep neural-tangents' ``kernel_fn``
(:func:`ntkexp.fastconv.select.wrn_net`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from ntkexp.fastconv import activations, recursion


@dataclasses.dataclass(frozen=True)
class WideResNet:
    """A pre-activation WRN: stem, residual blocks, ReLU, GAP, Dense.

    Attributes:
        blocks: ``(stride, project)`` of each residual block in order.
        W_std: weight standard deviation sigma_w of every layer.
        b_std: bias standard deviation sigma_b, or None for no biases.
        filter_size: side ``k`` of the stem and block convolutions (the
            projection shortcut is 1x1).
        parameterization: only ``'ntk'``.
        activation: a name of :data:`ntkexp.fastconv.activations.ACTIVATIONS`.
    """
    blocks: tuple[tuple[int, bool], ...]
    W_std: float
    b_std: Optional[float]
    filter_size: int = 3
    parameterization: str = 'ntk'
    activation: str = 'relu'

    def __post_init__(self):
        if self.parameterization != 'ntk':
            raise ValueError('WideResNet: only the ntk parameterization')
        for stride, _ in self.blocks:
            if stride < 1:
                raise ValueError(f'WideResNet: stride {stride} < 1')
        activations.get(self.activation)

    # The attributes recursion.kernel reads.
    full_spatial = True

    @property
    def bias_var(self) -> float:
        """``b_std^2`` (0 without biases)."""
        return 0.0 if self.b_std is None else self.b_std ** 2

    def scale(self, k: int) -> float:
        """``W^2 / k^2``: a ``k x k`` convolution's weight on ``sum_d``."""
        return self.W_std ** 2 / k ** 2

    def walk(self, state: Any, ops: '_Ops') -> Any:
        """Applies the blocks and the final ReLU to ``state`` with ``ops``.

        One traversal for both recursions (per-image variances and pairs), so
        the ReLUs are met in the same order by both.
        """
        k = self.filter_size
        for stride, project in self.blocks:
            if project:
                act = ops.relu(state)
                main = ops.conv(ops.relu(ops.conv(act, k, stride)), k, 1)
                short = ops.conv(act, 1, stride)
            else:
                main = ops.conv(ops.relu(ops.conv(ops.relu(state), k, 1)), k, 1)
                short = state
            state = ops.add(main, short)
        return ops.relu(state)

    def self_variances(self, x: jax.Array) -> list[jax.Array]:
        """Pre-activation variances ``Sigma(x, x)[p, p]`` at every ReLU.

        Args:
            x: images ``(b, H, W, C)``.

        Returns:
            One ``(b, H_l, W_l)`` array per ReLU, in :meth:`walk` order.
        """
        k = self.filter_size
        pt = recursion.patches(x, k)
        var = self.scale(k) * jnp.sum(pt * pt, axis=-1) / x.shape[-1]
        ops = _DiagonalOps(self)
        self.walk(var + self.bias_var, ops)
        return ops.variances

    def pair_kernels(self, pt1: jax.Array, pt2: jax.Array,
                     vars1: Sequence[jax.Array], vars2: Sequence[jax.Array],
                     in_channels: int, get: Sequence[str],
                     pairing: Any, spatial: tuple[int, int],
                     conv_relu: Optional[Callable] = None
                     ) -> dict[str, jax.Array]:
        """NNGP / NTK of the pairs laid out by ``pairing``.

        Arguments as :func:`ntkexp.fastconv.recursion.pair_kernels`
        (``conv_relu`` is not used).
        """
        del spatial, conv_relu
        k = self.filter_size
        need_ntk = 'ntk' in get
        b2 = self.bias_var
        raw = pairing.first(pt1, pt2) / in_channels
        nngp = self.scale(k) * raw + b2
        ntk = self.scale(k) * raw + b2 if need_ntk else None
        ops = _PairOps(self, pairing, vars1, vars2)
        nngp, ntk = self.walk((nngp, ntk), ops)
        w2 = self.W_std ** 2
        nngp_out = w2 * jnp.mean(nngp, axis=(-4, -3, -2, -1)) + b2
        out = {'nngp': nngp_out}
        if need_ntk:
            out['ntk'] = nngp_out + w2 * jnp.mean(ntk, axis=(-4, -3, -2, -1))
        return {g: out[g] for g in get}


class _Ops:
    """The three operations :meth:`WideResNet.walk` needs."""

    def relu(self, state):
        raise NotImplementedError

    def conv(self, state, k: int, stride: int):
        raise NotImplementedError

    def add(self, a, b):
        raise NotImplementedError


class _DiagonalOps(_Ops):
    """Per-image variances ``(b, H, W)``: an activation maps them by its
    ``diagonal`` (a ReLU halves them, ``theta = 0``)."""

    def __init__(self, net: WideResNet):
        self.net = net
        self.activation = activations.get(net.activation)
        self.variances: list[jax.Array] = []

    def relu(self, var):
        self.variances.append(var)
        return self.activation.diagonal(var)

    def conv(self, var, k, stride):
        return (self.net.scale(k) * recursion.conv_diag(var, k, stride)
                + self.net.bias_var)

    def add(self, a, b):
        return a + b


class _PairOps(_Ops):
    """``(nngp, ntk)`` of pairs; the ReLUs take the variances in order."""

    def __init__(self, net: WideResNet, pairing: Any,
                 vars1: Sequence[jax.Array], vars2: Sequence[jax.Array]):
        self.net, self.pairing = net, pairing
        self.vars = iter(zip(vars1, vars2))

    def relu(self, state):
        nngp, ntk = state
        v1, v2 = self.pairing.expand(*next(self.vars))
        return recursion.activation_pair(self.net.activation, nngp, ntk, v1, v2)

    def conv(self, state, k, stride):
        nngp, ntk = state
        scale, b2 = self.net.scale(k), self.net.bias_var
        if ntk is not None:
            # NTK parameterisation: Theta' = W^2/k^2 sum_d (Sigma + Theta) + b^2.
            ntk = scale * recursion.conv_full(nngp + ntk, k, stride) + b2
        return scale * recursion.conv_full(nngp, k, stride) + b2, ntk

    def add(self, a, b):
        return a[0] + b[0], (None if a[1] is None else a[1] + b[1])
