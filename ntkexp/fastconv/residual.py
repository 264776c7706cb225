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

:class:`ScaledResNet` walks the same operations for the convolutional ResNet
of the ResNTK papers (``model=resnet layout=image``; Huang et al. 2020, Belfer
et al. 2021), whose branches end in ``Scale(alpha)``: the branch's kernels
times ``alpha^2``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from ntkexp.fastconv import activations, recursion


class _ResidualNet:
    """What the residual nets share: a ``k x k`` convolution stem from the
    images' patches, :meth:`walk` over the blocks, then ``GlobalAvgPool ->
    Dense``. Subclasses are frozen dataclasses with ``W_std``, ``b_std``,
    ``filter_size``, ``parameterization`` and ``activation`` fields and a
    :meth:`walk`; the stem and the readout use ``W_std`` unless they override
    ``stem_std`` / ``readout_std``."""

    # The attributes recursion.kernel reads.
    full_spatial = True

    def __post_init__(self):
        if self.parameterization != 'ntk':
            raise ValueError(
                f'{type(self).__name__}: only the ntk parameterization')
        activations.get(self.activation)

    @property
    def stem_std(self) -> float:
        """sigma_w of the stem convolution."""
        return self.W_std

    @property
    def readout_std(self) -> float:
        """sigma_w of the readout ``Dense``."""
        return self.W_std

    @property
    def bias_var(self) -> float:
        """``b_std^2`` (0 without biases)."""
        return 0.0 if self.b_std is None else self.b_std ** 2

    def walk(self, state: Any, ops: '_Ops') -> Any:
        raise NotImplementedError

    def self_variances(self, x: jax.Array) -> list[jax.Array]:
        """Pre-activation variances ``Sigma(x, x)[p, p]`` at every activation.

        Args:
            x: images ``(b, H, W, C)``.

        Returns:
            One ``(b, H_l, W_l)`` array per activation, in :meth:`walk` order.
        """
        k = self.filter_size
        pt = recursion.patches(x, k)
        var = _scale(self.stem_std, k) * jnp.sum(pt * pt, axis=-1) / x.shape[-1]
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
        nngp = _scale(self.stem_std, k) * raw + b2
        ntk = nngp if need_ntk else None
        ops = _PairOps(self, pairing, vars1, vars2)
        nngp, ntk = self.walk((nngp, ntk), ops)
        w2 = self.readout_std ** 2
        nngp_out = w2 * jnp.mean(nngp, axis=(-4, -3, -2, -1)) + b2
        out = {'nngp': nngp_out}
        if need_ntk:
            out['ntk'] = nngp_out + w2 * jnp.mean(ntk, axis=(-4, -3, -2, -1))
        return {g: out[g] for g in get}


def _scale(std: float, k: int) -> float:
    """``std^2 / k^2``: a ``k x k`` convolution's weight on ``sum_d``."""
    return std ** 2 / k ** 2


@dataclasses.dataclass(frozen=True)
class WideResNet(_ResidualNet):
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
        super().__post_init__()
        for stride, _ in self.blocks:
            if stride < 1:
                raise ValueError(f'WideResNet: stride {stride} < 1')

    def walk(self, state: Any, ops: '_Ops') -> Any:
        """Applies the blocks and the final ReLU to ``state`` with ``ops``.

        One traversal for both recursions (per-image variances and pairs), so
        the ReLUs are met in the same order by both.
        """
        k, w = self.filter_size, self.W_std
        for stride, project in self.blocks:
            if project:
                act = ops.relu(state)
                main = ops.conv(ops.relu(ops.conv(act, k, stride, w)), k, 1, w)
                short = ops.conv(act, 1, stride, w)
            else:
                main = ops.conv(ops.relu(ops.conv(ops.relu(state), k, 1, w)),
                                k, 1, w)
                short = state
            state = ops.add(main, short)
        return ops.relu(state)


@dataclasses.dataclass(frozen=True)
class ScaledResNet(_ResidualNet):
    """The convolutional ResNet of the ResNTK papers (``model=resnet
    layout=image readout=gap``, :func:`ntkexp.models.resnet`).

    ``x_0 = Conv_V(x)``, ``x_l = x_{l-1} + alpha Conv_V(act(Conv_W(x_{l-1})))``
    for ``l = 1..depth`` (Huang et al. 2020, Eq. 1; Belfer et al. 2021), then
    ``GlobalAvgPool -> Dense_V``: SAME ``k x k`` convolutions, no activation
    on the trunk. ``Scale(alpha)`` multiplies the branch's kernels by
    ``alpha^2``. With ``trunk_scale`` ``c`` (``normalize=True``:
    ``1 / sqrt(1 + alpha^2)``) each block is ``c x + c alpha f(x)``, as the
    model builds it: the trunk's kernels times ``c^2``, the branch's times
    ``(c alpha)^2``.

    Attributes:
        depth: residual blocks.
        alpha: the residual-branch scale.
        W_std: sigma_w of the convolution before each activation.
        V_std: sigma_w of the stem, of each branch's second convolution and of
            the readout.
        b_std: bias standard deviation of every layer, or None.
        filter_size: side ``k`` of every convolution.
        parameterization: only ``'ntk'``.
        activation: a name of :data:`ntkexp.fastconv.activations.ACTIVATIONS`.
        trunk_scale: the factor ``c`` on each block's sum (1: none).
    """
    depth: int
    alpha: float
    W_std: float
    V_std: float
    b_std: Optional[float]
    filter_size: int = 3
    parameterization: str = 'ntk'
    activation: str = 'relu'
    trunk_scale: float = 1.0

    @property
    def stem_std(self) -> float:
        return self.V_std

    @property
    def readout_std(self) -> float:
        return self.V_std

    def walk(self, state: Any, ops: '_Ops') -> Any:
        """Applies the residual blocks to ``state`` with ``ops``."""
        k = self.filter_size
        for _ in range(self.depth):
            branch = ops.conv(ops.relu(ops.conv(state, k, 1, self.W_std)),
                              k, 1, self.V_std)
            c2 = self.trunk_scale ** 2
            trunk = state if c2 == 1.0 else ops.scale(state, c2)
            state = ops.add(trunk, ops.scale(branch, c2 * self.alpha ** 2))
        return state


class _Ops:
    """The operations the nets' ``walk`` needs: the activation (``relu``), a
    SAME ``k x k`` convolution of weight std ``std``, the sum of two branches
    and a constant factor on the kernels (``Scale``)."""

    def relu(self, state):
        raise NotImplementedError

    def conv(self, state, k: int, stride: int, std: float):
        raise NotImplementedError

    def add(self, a, b):
        raise NotImplementedError

    def scale(self, state, factor: float):
        raise NotImplementedError


class _DiagonalOps(_Ops):
    """Per-image variances ``(b, H, W)``: an activation maps them by its
    ``diagonal`` (a ReLU halves them, ``theta = 0``)."""

    def __init__(self, net: _ResidualNet):
        self.net = net
        self.activation = activations.get(net.activation)
        self.variances: list[jax.Array] = []

    def relu(self, var):
        self.variances.append(var)
        return self.activation.diagonal(var)

    def conv(self, var, k, stride, std):
        return (_scale(std, k) * recursion.conv_diag(var, k, stride)
                + self.net.bias_var)

    def add(self, a, b):
        return a + b

    def scale(self, var, factor):
        return factor * var


class _PairOps(_Ops):
    """``(nngp, ntk)`` of pairs; the ReLUs take the variances in order."""

    def __init__(self, net: _ResidualNet, pairing: Any,
                 vars1: Sequence[jax.Array], vars2: Sequence[jax.Array]):
        self.net, self.pairing = net, pairing
        self.vars = iter(zip(vars1, vars2))

    def relu(self, state):
        nngp, ntk = state
        v1, v2 = self.pairing.expand(*next(self.vars))
        return recursion.activation_pair(self.net.activation, nngp, ntk, v1, v2)

    def conv(self, state, k, stride, std):
        nngp, ntk = state
        scale, b2 = _scale(std, k), self.net.bias_var
        summed = recursion.conv_full(nngp, k, stride)
        if ntk is not None:
            # NTK parameterisation: Theta' = W^2/k^2 sum_d (Sigma + Theta) + b^2
            # (the two shift-sums apart: recursion.SEPARATE_NTK_SHIFT_SUM).
            if recursion.separate_ntk_shift_sum():
                ntk = scale * (summed + recursion.conv_full(ntk, k, stride)) + b2
            else:
                ntk = scale * recursion.conv_full(nngp + ntk, k, stride) + b2
        return scale * summed + b2, ntk

    def add(self, a, b):
        return a[0] + b[0], (None if a[1] is None else a[1] + b[1])

    def scale(self, state, factor):
        nngp, ntk = state
        return factor * nngp, (None if ntk is None else factor * ntk)
