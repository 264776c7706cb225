"""Pure-JAX CNN-GP / CNTK recursion for pooled convolutional networks.

The infinite-width kernels of a convolutional net (Novak et al. 2019, "Bayesian
Deep Convolutional Networks with Many Channels are Gaussian Processes"; Arora
et al. 2019, "On Exact Computation with an Infinitely Wide Neural Net", Sec. 4
and Appendix B) are a recursion on the spatial covariance of a pair of images,
``Sigma(x, x')[h, w, h', w']``. This module computes exactly the numbers that
neural-tangents' ``stax`` computes with ``diagonal_spatial=False`` for
``Conv(SAME) -> Relu -> ... [AvgPool(2, 2)] ... -> GlobalAvgPool | Flatten ->
Dense``, in a layout that XLA fuses well:

* **Batch of pairs.** A block ``x1 (b1)`` x ``x2 (b2)`` is one array
  ``(b1, b2, H, W, H, W)``; nothing is transposed between layers.
* **First convolution as one matmul.** ``Conv(Sigma_in)[p, p'] =
  <patch(x, p), patch(x', p')> / (C k^2)``, so the input covariance is never
  materialised: one ``(b1 H W, k^2 C) @ (k^2 C, b2 H W)`` product.
* **Later convolutions** with SAME zero padding shift both images by the same
  offset, ``Conv(Sigma)[p, p'] = 1/k^2 sum_d Sigma[p + d, p' + d]`` (Arora et
  al. 2019, Eq. 7): one zero pad and ``k^2`` slices, summed in one fused
  pass (no depthwise convolution, no transposes). The NTK shares it where the
  recursion is linear: ``Theta_out = W^2/k^2 sum_d (Theta + Sigma)[p + d, p' +
  d] + b^2`` (NTK parameterisation).
* **ReLU** uses the arc-cosine formulas (Cho & Saul 2009) with the per-pixel
  variances of each image, written as neural-tangents' ``ABRelu`` (``arctan2``
  form, same zero conventions), so both agree to rounding; ``arctan2`` is a
  vectorised polynomial (:func:`angle`), and an image paired with itself gets
  ``theta = 0`` exactly (:func:`relu`). The other activations of the models
  (``abs``, ``erf``, ``gelu``, ``sin``) take their closed forms from
  :mod:`ntkexp.fastconv.activations` at the same place (``ConvNet.activation``;
  the layer is still called ``'relu'``).
* **Per-image variances** come from a cheaper recursion: only the diagonal
  ``(b, H, W)`` once no pooling lies ahead (a SAME convolution maps the
  diagonal to itself, and ReLU halves it), the self covariance at the offsets
  the pools mix in (``(b, H, W, 2r + 1, 2r + 1)``) before an average pool.
* **CNN-VEC (Flatten readout)** only needs ``Sigma[p, p]``, so the whole pair
  recursion runs on ``(b1, b2, H, W)``.
* **Symmetric kernels** ``k(x, None)`` compute the ``n (n + 1) / 2`` pairs
  ``i <= j`` only and mirror them.
* **Bounded memory.** Large ``k(x1, x2)`` blocks run over rows of ``x1`` in
  chunks (``lax.map``) of at most :data:`STEP_ENTRIES` covariance entries.

Everything is ``jax.jit``-able with ``get`` static; see
:mod:`ntkexp.fastconv.select` for the wrapper that replaces a model's
``kernel_fn``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkexp import backend
from ntkexp.fastconv import activations
# Re-exported: the Pallas steps, benches and tests use them from here.
from ntkexp.fastconv.activations import angle, relu  # noqa: F401

CONV, RELU, POOL = 'conv', 'relu', 'pool'
KERNELS = ('nngp', 'ntk')
# Full float32 products in the first layer's matmul (GPUs may otherwise use
# TF32, a 1e-3 relative error).
HIGHEST = jax.lax.Precision.HIGHEST
# Whether the first layer's matmul is batched over the pairs of a block
# (:func:`_block_first`); False gives the plain product, which XLA transposes.
BATCHED_FIRST_MATMUL = True
# Whether :func:`shift_sum` writes its zero-padded input to memory once
# (``jax.lax.optimization_barrier``) instead of letting XLA fuse the padded
# producer (e.g. the ReLU's arc-cosine step) into each of the ``k^2`` shifted
# reads, which recomputes it ``k^2`` times: ``'auto'`` (on for the CPU backend,
# where it makes the 32x32 Myrtle-5 kernel 1.8x faster, ``docs/fastconv.md``;
# off elsewhere: on an H100 it makes that kernel 8% slower,
# ``results/bench/session14/``), ``True`` or ``False``. Both settings are read
# when a kernel is traced.
MATERIALIZE_PADDED = 'auto'
# Whether :func:`shift_sum` writes its result to memory once, so that the
# ReLU's passes (where XLA splits the arc-cosine step into several fusions)
# read one value each instead of re-summing the ``k^2`` shifted reads. Off:
# within 5% either way on a CPU (``results/bench/session4/``), 15% slower on an
# H100 (``results/bench/session14/``); kept as a variant (``python -m
# ntkexp.fastconv.bench --variants default,materialize_conv,materialize_all``).
MATERIALIZE_CONV_OUTPUT = False
# Whether the activation right before the readout (:func:`activation_pair`)
# writes its two outputs as one complex array (NNGP real, NTK imaginary):
# 'auto' (on for the CPU backend), True or False. Otherwise XLA's CPU fuses the
# arc-cosine step into the readout's two global means (one for the NNGP, one
# for the NTK) and computes it twice, in scalar reduction loops: the 32x32
# CNN-GAP kernel, whose last ReLU is at full resolution, then takes 1.8x as
# long in float64 and 1.4x in float32 (docs/fastconv.md). Packing the ReLUs before convolutions or pools
# made no difference above the CPU's noise (Myrtle-5, float32 and float64).
PACK_RELU_OUTPUTS = 'auto'
# Whether a convolution's NTK map shift-sums Sigma and Theta separately,
# ``Theta' = alpha S(Sigma) + beta S(Theta) + gamma``, sharing ``S(Sigma)`` with
# the NNGP map, instead of ``S(alpha Sigma + beta Theta) + gamma`` (the same
# sums, in another order): ``'auto'`` (off on every backend until timed on a
# GPU), True or False. On an H100, XLA writes one of a convolution's two
# shift-sums to memory and fuses the other into the ReLU (+ pool) after it; in
# the combined form it also writes ``alpha Sigma + beta Theta``, one more
# covariance read and written per layer (docs/fastconv.md, "Compiled for an
# H100 without one").
SEPARATE_NTK_SHIFT_SUM = 'auto'
# Whether the first layer's matmul writes its covariance with the next
# convolution's zero padding around it (zero patches around the images, so no
# pass of its own), when an activation and a convolution follow it at full
# resolution (Myrtle, CNN-GAP): the activation then runs on the padded
# covariance (its padding masked back to 0) and the convolution's ``k^2``
# shifted reads are plain slices, without the bounds checks of a fused pad.
# ``'auto'`` (off on every backend until timed on a GPU), True or False.
PADDED_FIRST_LAYER = 'auto'
# Whether :func:`self_variances` carries the self covariance only at the
# offsets the pools need (False: the whole ``(b, H, W, H, W)``, as before).
OFFSET_SELF_COVARIANCE = True


def _switch(setting: Any, on_cpu: bool, elsewhere: bool) -> bool:
    """A setting of ``'auto'`` (then ``on_cpu`` on the target backend's CPU,
    ``elsewhere`` otherwise), True or False."""
    if setting == 'auto':
        return on_cpu if backend.target_backend() == 'cpu' else elsewhere
    return bool(setting)


def pack_relu_outputs() -> bool:
    """Whether :data:`PACK_RELU_OUTPUTS` is on for the target backend."""
    return _switch(PACK_RELU_OUTPUTS, on_cpu=True, elsewhere=False)


def separate_ntk_shift_sum() -> bool:
    """Whether :data:`SEPARATE_NTK_SHIFT_SUM` is on (``'auto'``: off)."""
    return _switch(SEPARATE_NTK_SHIFT_SUM, on_cpu=False, elsewhere=False)


def padded_first_layer() -> bool:
    """Whether :data:`PADDED_FIRST_LAYER` is on (``'auto'``: off)."""
    return _switch(PADDED_FIRST_LAYER, on_cpu=False, elsewhere=False)


def materialize_padded() -> bool:
    """Whether :data:`MATERIALIZE_PADDED` is on for the target backend."""
    return _switch(MATERIALIZE_PADDED, on_cpu=True, elsewhere=False)


@dataclasses.dataclass(frozen=True)
class ConvNet:
    """A supported architecture: SAME convolutions, an element-wise
    activation, 2x2 average pools.

    Attributes:
        layers: the hidden layers in order, each ``'conv'``, ``'relu'`` (the
            activation, ``activation``) or ``'pool'`` (``AvgPool((p, p),
            strides=(p, p), 'VALID')``). The first must be ``'conv'``.
        readout: ``'gap'`` (``GlobalAvgPool``) or ``'flatten'``; both are
            followed by ``Dense(out_dim)`` with the same ``W_std``, ``b_std``.
        W_std: weight standard deviation sigma_w of every layer.
        b_std: bias standard deviation sigma_b, or None for no biases.
        parameterization: ``'ntk'`` or ``'standard'``.
        width: channels of the hidden convolutions (only the standard
            parameterisation's NTK depends on it).
        filter_size: side ``k`` of the square filters (stride 1, SAME).
        pool: window and stride of the average pools.
        activation: the activation of every ``'relu'`` layer, a name of
            :data:`ntkexp.fastconv.activations.ACTIVATIONS`.
    """
    layers: tuple[str, ...]
    readout: str
    W_std: float
    b_std: Optional[float]
    parameterization: str = 'ntk'
    width: int = 1
    filter_size: int = 3
    pool: int = 2
    activation: str = 'relu'

    def __post_init__(self):
        if not self.layers or self.layers[0] != CONV:
            raise ValueError('the first layer must be a convolution')
        if any(layer not in (CONV, RELU, POOL) for layer in self.layers):
            raise ValueError(f'unknown layer in {self.layers}')
        if self.readout not in ('gap', 'flatten'):
            raise ValueError(f'unknown readout {self.readout!r}')
        if self.parameterization not in ('ntk', 'standard'):
            raise ValueError(f'unknown parameterization {self.parameterization!r}')
        activations.get(self.activation)

    @property
    def full_spatial(self) -> bool:
        """Whether pairs need the full ``(H, W, H, W)`` covariance."""
        return self.readout == 'gap' or POOL in self.layers

    @property
    def last_pool(self) -> int:
        """Index of the last pooling layer, ``-1`` if there is none."""
        pools = [i for i, layer in enumerate(self.layers) if layer == POOL]
        return pools[-1] if pools else -1

    def out_spatial(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size after the hidden layers (VALID pools floor)."""
        for layer in self.layers:
            if layer == POOL:
                height, width = height // self.pool, width // self.pool
        return height, width

    # Per-layer affine constants ------------------------------------------------

    @property
    def bias_var(self) -> float:
        """``b_std^2`` (0 without biases)."""
        return 0.0 if self.b_std is None else self.b_std ** 2

    def conv_nngp_scale(self) -> float:
        """``Sigma_out = scale * sum_d Sigma[p + d, p' + d] + b^2``."""
        return self.W_std ** 2 / self.filter_size ** 2

    def conv_ntk_coeffs(self, in_channels: int) -> tuple[float, float, float]:
        """``(alpha, beta, gamma)``: ``Theta_out = sum_d (alpha Sigma + beta
        Theta)[p + d, p' + d] + gamma`` (neural-tangents' ``Conv`` kernel)."""
        k2 = self.filter_size ** 2
        w2 = self.W_std ** 2
        if self.parameterization == 'ntk':
            return w2 / k2, w2 / k2, self.bias_var
        # Standard: fan_in * mean_d Sigma + W^2 mean_d Theta (+1 with biases),
        # fan_in = in_channels * k^2 (Sohl-Dickstein et al. 2020).
        return float(in_channels), w2 / k2, 0.0 if self.b_std is None else 1.0


# Spatial operators on the trailing axes ---------------------------------------


def _same_pads(k: int) -> tuple[int, int]:
    """Low / high zero padding of a SAME stride-1 convolution (as ``lax``)."""
    lo = (k - 1) // 2
    return lo, k - 1 - lo


def conv_pads(size: int, k: int, stride: int = 1) -> tuple[int, int, int]:
    """``(out, low, high)`` of a SAME convolution along one axis (as ``lax``).

    ``out = ceil(size / stride)``; the total zero padding
    ``max((out - 1) stride + k - size, 0)`` is split with the smaller half low.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def shift_sum(a: jax.Array, axis_groups: Sequence[Sequence[int]],
              k: int, stride: int = 1, padded: bool = False) -> jax.Array:
    """``sum_d a[.., p + d, .., p' + d, ..]`` over SAME filter offsets ``d``.

    Each group of axes (e.g. ``(h, h')``) is shifted together by ``d_g in
    [-lo, hi]`` with zeros outside, and the ``k ** len(axis_groups)`` shifted
    copies are summed: the covariance map of a stride-1 SAME convolution with
    i.i.d. unit-variance taps (Arora et al. 2019, Eq. 7, without the
    ``1/k^2``). One zero pad and ``k^2`` slices, which XLA fuses into a single
    pass (about 3x faster on CPU than two separable passes).

    Args:
        a: the array.
        axis_groups: axes shifted together, one group per spatial dimension.
        k: filter size.
        stride: convolution stride; the grouped axes shrink to
            ``ceil(size / stride)`` (the strided SAME convolution of WRN's
            down-sampling blocks: ``sum_d a[s p + d - lo, s p' + d - lo]``).
        padded: ``a`` already carries the SAME zero padding on the grouped
            axes (stride 1 only): the shifted copies are plain slices of it.

    Returns:
        An array of ``a``'s shape (grouped axes strided; without the padding
        for ``padded``).
    """
    if k == 1 and stride == 1:
        return a
    groups = [[ax % a.ndim for ax in axes] for axes in axis_groups]
    if padded:
        if stride != 1:
            raise ValueError('shift_sum(padded=True) takes stride 1 only.')
        sizes = list(a.shape)
        for axes in groups:
            for ax in axes:
                sizes[ax] -= k - 1
        return _sum_of_slices(a, groups, sizes, [1] * a.ndim, k)
    pads = [(0, 0, 0)] * a.ndim
    sizes = list(a.shape)
    strides = [1] * a.ndim
    for axes in groups:
        for ax in axes:
            out_size, lo, hi = conv_pads(a.shape[ax], k, stride)
            pads[ax] = (lo, hi, 0)
            sizes[ax] = (out_size - 1) * stride + 1
            strides[ax] = stride
    padded = jax.lax.pad(a, jnp.zeros((), a.dtype), pads)
    if materialize_padded():
        padded = jax.lax.optimization_barrier(padded)
    return _sum_of_slices(padded, groups, sizes, strides, k)


def _sum_of_slices(padded: jax.Array, groups: Sequence[Sequence[int]],
                   sizes: Sequence[int], strides: Sequence[int],
                   k: int) -> jax.Array:
    """The ``k ** len(groups)`` shifted slices of ``padded`` (each group's
    axes offset together), summed: the body of :func:`shift_sum`."""
    out = None
    for offsets in itertools.product(range(k), repeat=len(groups)):
        start = [0] * padded.ndim
        for j, axes in zip(offsets, groups):
            for ax in axes:
                start[ax] = j
        piece = jax.lax.slice(padded, start,
                              [s + n for s, n in zip(start, sizes)], strides)
        out = piece if out is None else out + piece
    if MATERIALIZE_CONV_OUTPUT:
        out = jax.lax.optimization_barrier(out)
    return out


def conv_full(a: jax.Array, k: int, stride: int = 1) -> jax.Array:
    """Unnormalised conv map on ``(..., H, W, H', W')``."""
    return shift_sum(a, ((-4, -2), (-3, -1)), k, stride)


def conv_full_padded(a: jax.Array, k: int) -> jax.Array:
    """:func:`conv_full` of a covariance that already carries the SAME zero
    padding, ``(..., H + k - 1, W + k - 1, H + k - 1, W + k - 1) -> (..., H,
    W, H, W)``."""
    return shift_sum(a, ((-4, -2), (-3, -1)), k, padded=True)


def conv_diag(a: jax.Array, k: int, stride: int = 1) -> jax.Array:
    """Unnormalised conv map on the spatial diagonal ``(..., H, W)``."""
    return shift_sum(a, ((-2,), (-1,)), k, stride)


def conv_step(nngp: jax.Array, ntk: Optional[jax.Array], *, k: int,
              scale: float, shift: float, alpha: float, beta: float,
              gamma: float, conv: Callable = conv_full
              ) -> tuple[jax.Array, Optional[jax.Array]]:
    """A SAME convolution layer's kernel map (Arora et al. 2019, Eq. 7).

    ``Sigma' = scale S(Sigma) + shift`` and, linear in ``(Sigma, Theta)`` so in
    one pass, ``Theta' = S(alpha Sigma + beta Theta) + gamma``, with ``S`` the
    shift-sum ``conv`` (:func:`conv_full` or :func:`conv_diag`) and the
    constants of :meth:`ConvNet.conv_ntk_coeffs`. ``ntk`` may be None. With
    :func:`separate_ntk_shift_sum`, ``Theta' = alpha S(Sigma) + beta S(Theta) +
    gamma``, ``S(Sigma)`` shared with the NNGP.
    """
    if ntk is None:
        return scale * conv(nngp, k) + shift, None
    if separate_ntk_shift_sum():
        summed = conv(nngp, k)
        return (scale * summed + shift,
                alpha * summed + beta * conv(ntk, k) + gamma)
    ntk = conv(alpha * nngp + beta * ntk, k) + gamma
    return scale * conv(nngp, k) + shift, ntk


def avg_pool_full(a: jax.Array, p: int) -> jax.Array:
    """``AvgPool((p, p), strides=(p, p), 'VALID')`` on both images' axes.

    ``(..., H, W, H, W) -> (..., H//p, W//p, H//p, W//p)``: the mean over
    ``p^4`` entries (neural-tangents divides the window sum by ``p^4``).
    """
    *batch, h, w, h2, w2 = a.shape
    ho, wo = h // p, w // p
    a = a[..., :ho * p, :wo * p, :ho * p, :wo * p]
    a = a.reshape(*batch, ho, p, wo, p, ho, p, wo, p)
    n = len(batch)
    axes = tuple(n + i for i in (1, 3, 5, 7))
    return jnp.sum(a, axis=axes) / p ** 4


def full_diagonal(a: jax.Array) -> jax.Array:
    """``a[..., h, w, h, w]`` of ``(..., H, W, H, W)`` as ``(..., H, W)``."""
    *batch, h, w, _, _ = a.shape
    flat = a.reshape(*batch, h * w, h * w)
    return jnp.diagonal(flat, axis1=-2, axis2=-1).reshape(*batch, h, w)


def activation_pair(activation: str, nngp: jax.Array,
                    ntk: Optional[jax.Array], v1: jax.Array, v2: jax.Array,
                    pack: bool = False
                    ) -> tuple[jax.Array, Optional[jax.Array]]:
    """The activation step of a pair's NNGP and NTK: ``(nngp_out, ntk * dot)``
    (:meth:`ntkexp.fastconv.activations.Activation.pair`, e.g. :func:`relu`;
    ``ntk`` None: only the NNGP).

    Args:
        activation: a name of :data:`ntkexp.fastconv.activations.ACTIVATIONS`.
        nngp, ntk: the pair's kernels.
        v1, v2: the two images' variances, broadcastable to ``nngp``
            (:attr:`_Pairing.expand`).
        pack: with :func:`pack_relu_outputs`, the two come out of one complex
            array (written once, ``jax.lax.optimization_barrier``), so that XLA
            computes the step once per entry and in one pass; the values are
            the same.
    """
    out, dot = activations.get(activation).pair(nngp, v1, v2)
    if ntk is None:
        return out, None
    if not (pack and pack_relu_outputs()):
        return out, ntk * dot
    packed = jax.lax.optimization_barrier(jax.lax.complex(out, ntk * dot))
    return jnp.real(packed), jnp.imag(packed)


def pad_images(a: jax.Array, k: int) -> jax.Array:
    """``(b, H, W, ...)`` zero-padded on ``H`` and ``W`` by the SAME pads of a
    ``k x k`` filter."""
    lo, hi = _same_pads(k)
    return jnp.pad(a, ((0, 0), (lo, hi), (lo, hi)) + ((0, 0),) * (a.ndim - 3))


def patches(x: jax.Array, k: int) -> jax.Array:
    """``(b, H, W, C) -> (b, H, W, k*k*C)``: SAME zero-padded ``k x k`` patches."""
    if k == 1:
        return x
    b, h, w, c = x.shape
    xp = pad_images(x, k)
    cols = [xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)]
    return jnp.concatenate(cols, axis=-1)


# Per-image variances ----------------------------------------------------------


def self_variances(net: ConvNet, x: jax.Array) -> list[jax.Array]:
    """Pre-activation variances ``Sigma(x, x)[h, w, h, w]`` at every
    activation (``'relu'`` layer).

    Up to the last average pool the self covariance is carried at the
    position offsets the remaining pools can mix into the diagonal
    (:func:`_offset_ranges`), as ``(b, H, W, 2r + 1, 2r + 1)`` arrays of
    ``Sigma[p, p + delta]`` (:func:`_offset_covariance`): a SAME convolution
    keeps each offset, an activation is element-wise (its pair step with the
    variances at ``p`` and ``p + delta``) and a ``P x P`` pool turns offset
    range ``r`` into ``(r - P + 1) / P``. After the last pool only the
    diagonal ``(b, H, W)`` is carried (a SAME convolution and an activation map
    the diagonal to itself, the latter by
    :meth:`~ntkexp.fastconv.activations.Activation.diagonal`: the ReLU halves
    it exactly, as neural-tangents' arc-cosine step does at ``theta = 0``).
    For Myrtle's 32x32 stage that is ``7^2`` offsets per pixel instead of all
    ``32^2``.

    Args:
        net: the architecture.
        x: images ``(b, H, W, C)``.

    Returns:
        One ``(b, H_l, W_l)`` array per ReLU layer, in order.
    """
    if not OFFSET_SELF_COVARIANCE and net.last_pool >= 0:
        return full_self_variances(net, x)
    k = net.filter_size
    act = activations.get(net.activation)
    c_in = x.shape[-1]
    pt = patches(x, k)
    scale = net.conv_nngp_scale()
    b2 = net.bias_var
    ranges = _offset_ranges(net)
    r = ranges[0]
    if r is not None:
        cov = _offset_covariance(pt, r) / c_in
        valid = _offset_mask(pt.shape[1:3], r, pt.dtype)
        cov = (scale * cov + b2) * valid
    else:
        cov = scale * (jnp.sum(pt * pt, axis=-1) / c_in) + b2
    out = []
    layers = net.layers
    for i in range(1, len(layers)):
        layer = layers[i]
        if layer == RELU:
            if r is not None:
                var = cov[..., r, r]
                out.append(var)
                cov, _ = act.pair(cov, var[..., None, None],
                                  _offset_values(var, r))
            else:
                out.append(cov)
                cov = act.diagonal(cov)
        elif layer == CONV:
            if r is not None:
                cov = (scale * shift_sum(cov, ((-4,), (-3,)), k) + b2) * valid
            else:
                cov = scale * conv_diag(cov, k) + b2
        elif layer == POOL:
            r = ranges[i]
            cov = _pool_offsets(cov, net.pool, r or 0)
            if r is None:
                cov = cov[..., 0, 0]
            else:
                valid = _offset_mask(cov.shape[-4:-2], r, cov.dtype)
                cov = cov * valid
    return out


def full_self_variances(net: ConvNet, x: jax.Array) -> list[jax.Array]:
    """:func:`self_variances` from the whole self covariance ``(b, H, W, H,
    W)`` through every layer (the reference, and ``OFFSET_SELF_COVARIANCE =
    False``)."""
    k, scale, b2 = net.filter_size, net.conv_nngp_scale(), net.bias_var
    act = activations.get(net.activation)
    pt = patches(x, k)
    cov = scale * jnp.einsum('ahwk,axyk->ahwxy', pt, pt,
                             precision=HIGHEST) / x.shape[-1] + b2
    out = []
    for layer in net.layers[1:]:
        if layer == RELU:
            var = full_diagonal(cov)
            out.append(var)
            cov, _ = act.pair(cov, var[..., :, :, None, None],
                              var[..., None, None, :, :])
        elif layer == CONV:
            cov = scale * conv_full(cov, k) + b2
        else:
            cov = avg_pool_full(cov, net.pool)
    return out


def _offset_ranges(net: ConvNet) -> list[Optional[int]]:
    """Offset range of the self covariance needed after each layer.

    ``ranges[i]`` is the range after layer ``i``; None where only the diagonal
    is needed (after the last pool, or everywhere without pools). Walking
    back from the output, a ``P x P`` pool that needs range ``r`` after it
    needs ``P r + P - 1`` before it (``r = 0``: the diagonal).
    """
    ranges: list[Optional[int]] = [None] * len(net.layers)
    needed: Optional[int] = None
    for i in range(len(net.layers) - 1, -1, -1):
        ranges[i] = needed
        if net.layers[i] == POOL:
            needed = net.pool * (needed or 0) + net.pool - 1
    return ranges


def _offset_covariance(pt: jax.Array, r: int) -> jax.Array:
    """``<patch(p), patch(p + delta)>`` as ``(b, H, W, 2r + 1, 2r + 1)``
    (zero where ``p + delta`` is outside the image)."""
    return jnp.einsum('ahwk,ahwkxy->ahwxy', pt, _offset_values(pt, r),
                      precision=HIGHEST)


def _offset_values(a: jax.Array, r: int) -> jax.Array:
    """``a[:, p + delta]`` of ``(b, H, W, ...)`` as ``(b, H, W, ..., 2r + 1,
    2r + 1)`` (zero outside the image)."""
    pads = [(0, 0), (r, r), (r, r)] + [(0, 0)] * (a.ndim - 3)
    padded = jnp.pad(a, pads)
    h, w = a.shape[1:3]
    return jnp.stack([jnp.stack([padded[:, dh:dh + h, dw:dw + w]
                                 for dw in range(2 * r + 1)], axis=-1)
                      for dh in range(2 * r + 1)], axis=-2)


def _offset_mask(spatial: Sequence[int], r: int, dtype) -> jax.Array:
    """1 where ``p + delta`` lies inside the ``spatial`` image, else 0."""
    ones = jnp.ones((1,) + tuple(spatial), dtype)
    return _offset_values(ones, r)[0]


def _pool_offsets(cov: jax.Array, p: int, r: int) -> jax.Array:
    """``AvgPool((p, p))`` of an offset covariance, to offset range ``r``.

    ``Sigma'[P, D] = p^-4 sum_{i, j in [0, p)^2} Sigma[p P + i, p D + j - i]``
    (VALID: rows and columns past ``p * (H // p)`` dropped).
    """
    r_in = (cov.shape[-1] - 1) // 2
    h, w = cov.shape[-4] // p, cov.shape[-3] // p
    total = 0.
    for ih, iw in itertools.product(range(p), repeat=2):
        rows = cov[..., ih:h * p:p, iw:w * p:p, :, :]
        for jh, jw in itertools.product(range(p), repeat=2):
            # Offset p D + j - i for D in [-r, r], as an index into [-r_in, r_in].
            start_h = r_in - p * r + jh - ih
            start_w = r_in - p * r + jw - iw
            total = total + rows[..., start_h:start_h + p * 2 * r + 1:p,
                                 start_w:start_w + p * 2 * r + 1:p]
    return total / p ** 4


# Pair recursion ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Pairing:
    """How pairs are laid out: a ``(b1, b2)`` block or a flat list of pairs.

    Attributes:
        first: the first layer's patch products of the pairs.
        expand: the two sides' per-image variances as views broadcastable to
            the pairs' covariance (what an activation step takes).
    """
    first: Callable[[jax.Array, jax.Array], jax.Array]
    expand: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _block_first(p1: jax.Array, p2: jax.Array) -> jax.Array:
    """``<patch(x_a, p), patch(x'_b, p')>`` laid out ``(a, b, H, W, H, W)``.

    A matmul batched over the pairs ``(a, b)`` of the (broadcast) patches, so
    that its output is already in the recursion's layout. The plain product
    ``(a H W, k) x (k, b H W)`` comes out as ``(a, H, W, b, H, W)``, and XLA then
    transposes it into every fusion that reads it (five transposed copies of
    each pair's covariance on a CPU; the batched form makes the 32x32 Myrtle-5
    kernel 1.5x faster there, ``docs/fastconv.md``). The broadcast patches are
    ``2 k^2 C / (H W)`` of the output's size.
    """
    if not BATCHED_FIRST_MATMUL:
        return jnp.einsum('ahwk,bxyk->abhwxy', p1, p2, precision=HIGHEST)
    b1, b2 = p1.shape[0], p2.shape[0]
    p1 = jnp.broadcast_to(p1[:, None], (b1, b2) + p1.shape[1:])
    p2 = jnp.broadcast_to(p2[None], (b1, b2) + p2.shape[1:])
    return jnp.einsum('abhwk,abxyk->abhwxy', p1, p2, precision=HIGHEST)


def block_variances(v1: jax.Array, v2: jax.Array
                    ) -> tuple[jax.Array, jax.Array]:
    """``v1[a, h, w]`` and ``v2[b, x, y]`` broadcastable to ``(a, b, H, W, H,
    W)``."""
    return v1[:, None, :, :, None, None], v2[None, :, None, None, :, :]


def block_variance_product(v1: jax.Array, v2: jax.Array) -> jax.Array:
    """``v1[a, h, w] v2[b, x, y]`` as ``(a, b, H, W, H, W)``: the variance
    products a block's ReLU takes (:func:`relu`)."""
    u1, u2 = block_variances(v1, v2)
    return u1 * u2


def _block_pairing(full: bool) -> _Pairing:
    if full:
        return _Pairing(first=_block_first, expand=block_variances)
    return _Pairing(
        first=lambda p1, p2: jnp.einsum('ahwk,bhwk->abhw', p1, p2,
                                         precision=HIGHEST),
        expand=lambda v1, v2: (v1[:, None], v2[None, :]))


def _flat_pairing(full: bool) -> _Pairing:
    if full:
        return _Pairing(
            first=lambda p1, p2: jnp.einsum('phwk,pxyk->phwxy', p1, p2,
                                             precision=HIGHEST),
            expand=lambda v1, v2: (v1[:, :, :, None, None],
                                   v2[:, None, None, :, :]))
    return _Pairing(first=lambda p1, p2: jnp.sum(p1 * p2, axis=-1),
                    expand=lambda v1, v2: (v1, v2))


@dataclasses.dataclass
class _Walk:
    """The pairs' covariances between two layers of :func:`pair_kernels`.

    Attributes:
        nngp, ntk: the NNGP / NTK covariances after layer ``layer`` (``ntk``
            None when not asked for; both None before a step that computes
            the first layer's product itself).
        layer: index of the last layer done in ``net.layers``.
        relu_index: index of the next activation's variances in ``vars1/vars2``.
        padded: whether the covariances carry the next convolution's zero
            padding (PADDED_FIRST_LAYER, or a Pallas step's padded output).
        step_input: extra keyword arguments of the next fused step.
    """
    nngp: Optional[jax.Array]
    ntk: Optional[jax.Array]
    layer: int = 0
    relu_index: int = 0
    padded: bool = False
    step_input: dict[str, Any] = dataclasses.field(default_factory=dict)


def pair_kernels(net: ConvNet, pt1: jax.Array, pt2: jax.Array,
                 vars1: Sequence[jax.Array], vars2: Sequence[jax.Array],
                 in_channels: int, get: Sequence[str],
                 pairing: _Pairing, spatial: tuple[int, int],
                 conv_relu: Optional[Callable] = None
                 ) -> dict[str, jax.Array]:
    """NNGP / NTK of the pairs laid out by ``pairing``.

    The first layer (:func:`_first_layer`), then each layer in turn: an
    activation (:func:`_activation_layer`), a convolution with the
    activation after it fused into one Pallas step (:func:`_fused_layers`),
    a convolution (:func:`conv_step`) or an average pool; then the readout
    (:func:`_readout`).

    Args:
        net: the architecture.
        pt1, pt2: first-layer patches of the two sides (already paired up for a
            flat pairing).
        vars1, vars2: per-ReLU variances of the two sides (same layout).
        in_channels: channels of the input images.
        get: which kernels.
        pairing: block or flat layout.
        spatial: input ``(H, W)``.
        conv_relu: optional fused convolution + ReLU for block pairings
            (:func:`ntkexp.fastconv.pallas.conv_relu`; ReLU networks only).

    Returns:
        ``{get: kernel}`` with the pairing's batch shape.

    Raises:
        ValueError: ``conv_relu`` for a network whose activation is not ReLU.
    """
    if conv_relu is not None and net.activation != 'relu':
        raise ValueError(f'the fused Pallas steps compute ReLU only, not '
                         f'{net.activation}; use the XLA recursion.')
    need_ntk = 'ntk' in get
    layers = net.layers
    walk = _first_layer(net, pt1, pt2, vars1, vars2, in_channels, need_ntk,
                        pairing, conv_relu)
    while walk.layer + 1 < len(layers):
        walk.layer += 1
        i = walk.layer
        layer = layers[i]
        if layer == RELU:
            _activation_layer(net, walk, vars1, vars2, need_ntk, pairing, spatial)
        elif (layer == CONV and conv_relu is not None and need_ntk
              and net.full_spatial and i + 1 < len(layers)
              and layers[i + 1] == RELU):
            _fused_layers(net, walk, vars1, vars2, conv_relu)
        elif layer == CONV:
            alpha, beta, gamma = net.conv_ntk_coeffs(net.width)
            walk.nngp, walk.ntk = conv_step(
                walk.nngp, walk.ntk, k=net.filter_size,
                scale=net.conv_nngp_scale(), shift=net.bias_var, alpha=alpha,
                beta=beta, gamma=gamma,
                conv=(conv_full_padded if walk.padded else
                      conv_full if net.full_spatial else conv_diag))
            walk.padded = False
        elif layer == POOL:
            walk.nngp = avg_pool_full(walk.nngp, net.pool)
            if need_ntk:
                walk.ntk = avg_pool_full(walk.ntk, net.pool)
    return _readout(net, walk.nngp, walk.ntk, get, spatial)


def _first_layer(net: ConvNet, pt1: jax.Array, pt2: jax.Array,
                 vars1: Sequence[jax.Array], vars2: Sequence[jax.Array],
                 in_channels: int, need_ntk: bool, pairing: _Pairing,
                 conv_relu: Optional[Callable]) -> _Walk:
    """The first convolution's covariances, or what a fused step needs to
    compute them itself (arguments as :func:`pair_kernels`).

    Three ways, by what ``conv_relu`` can take: the first ReLU -> conv ->
    ReLU as one step reading the first layer's product (or its patches);
    the product, affine map and ReLU as one step
    (:mod:`ntkexp.fastconv.first_relu`); or the product here.
    """
    k = net.filter_size
    full = net.full_spatial
    scale = net.conv_nngp_scale()
    b2 = net.bias_var
    layers = net.layers
    alpha, _, gamma = net.conv_ntk_coeffs(in_channels)
    if (getattr(conv_relu, 'fuses_input_relu', False) and need_ntk and full
            and tuple(layers[1:4]) == (RELU, CONV, RELU)):
        # The first ReLU -> conv -> ReLU (+ pool) as one step
        # (ntkexp.fastconv.diagonal), reading the first layer's product once:
        # zero patches around the images make it come out zero-padded for the
        # convolution, and NNGP and NTK are both affine in it.
        def pad(a):
            return pad_images(a, k)
        step_input = dict(in_vars=(pad(vars1[0]), pad(vars2[0])), padded=True,
                          input_affine=(scale / in_channels, b2,
                                        alpha / in_channels, gamma))
        if getattr(conv_relu, 'fuses_input_product', False):
            # Not even the product: the step computes it from the patches.
            step_input['input_patches'] = (pad(pt1), pad(pt2))
            return _Walk(None, None, layer=1, relu_index=1, step_input=step_input)
        return _Walk(pairing.first(pad(pt1), pad(pt2)), None, layer=1, relu_index=1,
                     step_input=step_input)
    if (getattr(conv_relu, 'first_relu', None) is not None and need_ntk
            and full and k > 1 and tuple(layers[1:3]) == (RELU, CONV)):
        # The first layer's product, affine map and ReLU as one Pallas step
        # (ntkexp.fastconv.first_relu), written zero-padded for the
        # convolution after it (as PADDED_FIRST_LAYER), or unpadded for a
        # step that masks its loads: the product is never stored.
        padded = not getattr(conv_relu, 'masks_padding', False)
        nngp, ntk = conv_relu.first_relu(
            pt1, pt2, vars1[0], vars2[0], k=k,
            affine=(scale / in_channels, b2, alpha / in_channels, gamma))
        return _Walk(nngp, ntk, layer=1, relu_index=1, padded=padded)
    # First convolution straight from the patches: its unnormalised conv of
    # the input covariance x x' / C is <patch, patch'> / C (Arora et al.
    # 2019, Eq. 7).
    padded = False
    if (padded_first_layer() and full and k > 1
            and (conv_relu is None or getattr(conv_relu, 'takes_padded', False))
            and tuple(layers[1:3]) == (RELU, CONV)):
        # Already padded for the convolution after the activation (see
        # PADDED_FIRST_LAYER): zero patches give zero products.
        padded = True
        raw = pairing.first(pad_images(pt1, k), pad_images(pt2, k))
    else:
        raw = pairing.first(pt1, pt2)
    nngp = scale * (raw / in_channels) + b2
    ntk = alpha * (raw / in_channels) + gamma if need_ntk else None
    return _Walk(nngp, ntk, padded=padded)


def _activation_layer(net: ConvNet, walk: _Walk, vars1: Sequence[jax.Array],
                      vars2: Sequence[jax.Array], need_ntk: bool,
                      pairing: _Pairing, spatial: tuple[int, int]) -> None:
    """The activation at ``walk.layer`` (:func:`activation_pair`), in place;
    zero again on the padding of padded covariances."""
    k = net.filter_size
    var1, var2 = vars1[walk.relu_index], vars2[walk.relu_index]
    if walk.padded:
        var1, var2 = pad_images(var1, k), pad_images(var2, k)
    v1, v2 = pairing.expand(var1, var2)
    walk.relu_index += 1
    # Packed before the readout (see PACK_RELU_OUTPUTS).
    walk.nngp, walk.ntk = activation_pair(
        net.activation, walk.nngp, walk.ntk if need_ntk else None, v1, v2,
        pack=walk.layer + 1 == len(net.layers))
    if walk.padded:
        # Zero outside the images (biases, 0 / 0 at zero variances).
        mask = _padding_mask(spatial, k)
        inside1, inside2 = pairing.expand(mask, mask)
        inside = inside1 & inside2
        walk.nngp = jnp.where(inside, walk.nngp, 0.)
        if walk.ntk is not None:
            walk.ntk = jnp.where(inside, walk.ntk, 0.)


def _fused_layers(net: ConvNet, walk: _Walk, vars1: Sequence[jax.Array],
                  vars2: Sequence[jax.Array], conv_relu: Callable) -> None:
    """The convolution at ``walk.layer`` and the ReLU after it (+ the average
    pool that follows, or the last ``Conv -> ReLU`` and the global mean) as
    one Pallas step (:mod:`ntkexp.fastconv.pallas`), in place."""
    layers = net.layers
    i = walk.layer
    scale, b2 = net.conv_nngp_scale(), net.bias_var
    pool, skip = _fused_pool(net, i, vars1[walk.relu_index].shape[-2:])
    alpha, beta, gamma = net.conv_ntk_coeffs(net.width)
    step_input = walk.step_input
    if (getattr(conv_relu, 'fuses_gap_tail', False)
            and net.readout == 'gap'
            and tuple(layers[i + 2:]) == (CONV, RELU)):
        # The last Conv -> ReLU and the global mean in this step too
        # (ntkexp.fastconv.diagonal.GapTail): it returns the means, (b1, b2,
        # 1, 1, 1, 1), which the readout keeps.
        from ntkexp.fastconv import diagonal  # pylint: disable=g-import-not-at-top
        step_input = dict(step_input, tail=diagonal.GapTail(
            vars1[walk.relu_index + 1], vars2[walk.relu_index + 1], scale, b2,
            alpha, beta, gamma))
        pool, skip = None, 2
    if walk.padded:
        step_input = dict(step_input, padded=True)
    # A step that writes its outputs padded for the next one (a convolution
    # + activation again; no pad pass between them).
    after = i + 2 + skip
    pad_output = (getattr(conv_relu, 'pads_output', False)
                  and tuple(layers[after:after + 2]) == (CONV, RELU))
    if pad_output:
        step_input = dict(step_input, pad_output=True)
    walk.nngp, walk.ntk = conv_relu(
        walk.nngp, walk.ntk, vars1[walk.relu_index], vars2[walk.relu_index],
        k=net.filter_size, scale=scale, shift=b2, alpha=alpha, beta=beta,
        gamma=gamma, pool=pool, **step_input)
    walk.relu_index += 2 if 'tail' in step_input else 1
    walk.step_input = {}
    walk.padded = pad_output
    walk.layer += 1 + skip


def _readout(net: ConvNet, nngp: jax.Array, ntk: Optional[jax.Array],
             get: Sequence[str], spatial: tuple[int, int]
             ) -> dict[str, jax.Array]:
    """GlobalAvgPool (mean over all ``(p, p')``) or Flatten (mean of the
    diagonal ``p = p'``), then Dense: ``{get: kernel}``."""
    full = net.full_spatial
    if net.readout == 'gap':
        def pool(a):
            return jnp.mean(a, axis=(-4, -3, -2, -1))
        in_width = net.width
    else:
        def pool(a):
            if full:
                a = full_diagonal(a)
            return jnp.mean(a, axis=(-2, -1))
        h, w = net.out_spatial(*spatial)
        in_width = net.width * h * w
    nngp_m = pool(nngp)
    w2 = net.W_std ** 2
    b2 = net.bias_var
    nngp_out = w2 * nngp_m + b2
    out = {'nngp': nngp_out}
    if 'ntk' in get:
        ntk_m = pool(ntk)
        if net.parameterization == 'ntk':
            out['ntk'] = nngp_out + w2 * ntk_m
        else:
            out['ntk'] = (in_width * nngp_m + w2 * ntk_m +
                          (0.0 if net.b_std is None else 1.0))
    return {g: out[g] for g in get}


def _padding_mask(spatial: tuple[int, int], k: int) -> jax.Array:
    """``(1, H + k - 1, W + k - 1)``: True on the image, False on the SAME
    zero padding of a ``k x k`` filter (as :func:`pad_images`)."""
    lo, _ = _same_pads(k)
    inside = np.zeros((1, spatial[0] + k - 1, spatial[1] + k - 1), bool)
    inside[:, lo:lo + spatial[0], lo:lo + spatial[1]] = True
    return jnp.asarray(inside)


def _fused_pool(net: ConvNet, conv_index: int,
                spatial: tuple[int, int]) -> tuple[Optional[int], int]:
    """The average pool a fused ``conv -> relu`` step at ``conv_index`` can
    absorb, and how many further layers that consumes.

    ``(net.pool, 1)`` when an ``AvgPool`` follows the ReLU; ``(2, 0)`` when the
    ReLU is the last layer before a ``GlobalAvgPool`` readout and the sides are
    even (the global mean of 2x2 means is the global mean); ``(None, 0)``
    otherwise.
    """
    layers = net.layers
    after = conv_index + 2
    if after < len(layers) and layers[after] == POOL:
        return net.pool, 1
    if (after == len(layers) and net.readout == 'gap'
            and all(s % 2 == 0 for s in spatial)):
        return 2, 0
    return None, 0


def _recursion_of(net) -> tuple[Callable, Callable]:
    """``(self_variances, pair_kernels)`` for ``net``'s kind of architecture.

    :class:`ConvNet` uses this module's; other architectures (e.g.
    :class:`ntkexp.fastconv.residual.WideResNet`) carry theirs as the
    ``self_variances`` / ``pair_kernels`` attributes of their class, with the
    same signatures.
    """
    if isinstance(net, ConvNet):
        return self_variances, pair_kernels
    return type(net).self_variances, type(net).pair_kernels


# Pair-covariance entries per step (lax.map) of a kernel block. On GPUs 2**26
# (256 MiB per float32 array): large steps keep the device busy and the
# memory bounded. On CPUs 2**20 (one pair of 32x32 images, 4 MiB per array):
# the arrays of a step then stay in the last-level cache, and the 32x32
# Myrtle-5 / CNN-GAP / WRN-10-1 kernels are 1.7-1.9x faster than in
# 2**26-entry steps (docs/fastconv.md).
STEP_ENTRIES = 2 ** 26
STEP_ENTRIES_CPU = 2 ** 20


def default_step_entries() -> int:
    """:data:`STEP_ENTRIES_CPU` on a CPU backend, :data:`STEP_ENTRIES`
    otherwise."""
    return (STEP_ENTRIES_CPU if backend.target_backend() == 'cpu'
            else STEP_ENTRIES)


def step_pairs(net: ConvNet, spatial: Sequence[int],
               step_entries: Optional[int] = None) -> int:
    """Pairs of images per step of :func:`kernel`: at most ``step_entries``
    (default :func:`default_step_entries`) pair-covariance entries, at least
    one pair."""
    per_pair = (spatial[0] * spatial[1]) ** (2 if net.full_spatial else 1)
    if step_entries is None:
        step_entries = default_step_entries()
    return max(1, step_entries // per_pair)


def block_chunks(pairs_per_step: int, n2: int) -> tuple[int, int]:
    """``(rows of x1, columns of x2)`` per step of a ``k(x1, x2)`` block
    with ``n2`` columns: whole rows of ``x2`` when one fits a step, otherwise
    one row in chunks of columns."""
    col_chunk = pairs_per_step
    return max(1, pairs_per_step // min(col_chunk, n2)), col_chunk


def _in_chunks(fn: Callable, arrays: Any, chunk: int) -> Any:
    """``fn(arrays)`` over chunks of ``chunk`` along the leading axis of every
    array in the pytree ``arrays`` (``lax.map``; the last chunk padded with
    zeros), the outputs' leading axes concatenated and the padding dropped.
    """
    n = jax.tree_util.tree_leaves(arrays)[0].shape[0]
    if chunk >= n:
        return fn(arrays)
    steps = -(-n // chunk)

    def split(a):
        a = jnp.pad(a, [(0, steps * chunk - n)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((steps, chunk) + a.shape[1:])

    out = jax.lax.map(fn, jax.tree_util.tree_map(split, arrays))
    return jax.tree_util.tree_map(
        lambda a: a.reshape((steps * chunk,) + a.shape[2:])[:n], out)


def kernel(net: ConvNet, x1: jax.Array, x2: Optional[jax.Array] = None,
           get: Sequence[str] = KERNELS,
           conv_relu: Optional[Callable] = None,
           step_entries: Optional[int] = None) -> dict[str, jax.Array]:
    """Infinite-width NNGP / NTK of ``net`` between ``x1`` and ``x2``.

    Equal (to rounding) to the neural-tangents ``kernel_fn(x1, x2, get)`` of the
    same ``stax`` network. Inputs are cast like neural-tangents does (to
    float64 when ``jax_enable_x64`` is on, float32 otherwise).

    Args:
        net: the architecture.
        x1: images ``(n1, H, W, C)``.
        x2: images ``(n2, H, W, C)``, or None for ``k(x1, x1)``: then only the
            pairs ``i <= j`` are computed and mirrored, so the result is
            exactly symmetric.
        get: subset of ``('nngp', 'ntk')``.
        conv_relu: optional fused convolution + ReLU step used for ``k(x1,
            x2)`` blocks (:mod:`ntkexp.fastconv.pallas`).
        step_entries: the kernel runs in steps (``lax.map``) of at most
            this many pair-covariance entries (``pairs * (H W)^2``; at least
            one pair): ``k(x1, x2)`` over chunks of rows of ``x1`` and, when
            one row is more, of columns of ``x2``; ``k(x1, None)`` over
            chunks of its pairs ``i <= j``. Default
            :func:`default_step_entries`.

    Returns:
        ``{name: (n1, n2) array}`` for each name in ``get``.
    """
    get = tuple(get)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    x1 = jnp.asarray(x1).astype(dtype)
    k = net.filter_size
    full = net.full_spatial
    in_channels = x1.shape[-1]
    spatial = tuple(x1.shape[1:3])
    pt1 = patches(x1, k)
    variances, pairs = _recursion_of(net)
    vars1 = variances(net, x1)
    pairs_per_step = step_pairs(net, spatial, step_entries)
    if x2 is not None:
        x2 = jnp.asarray(x2).astype(dtype)
        pt2 = patches(x2, k)
        vars2 = variances(net, x2)
        pairing = _block_pairing(full)
        row_chunk, col_chunk = block_chunks(pairs_per_step, x2.shape[0])

        def rows_block(args):
            p1, v1 = args

            def cols_block(args2):
                p2, v2 = args2
                out = pairs(net, p1, p2, v1, v2, in_channels, get, pairing,
                            spatial, conv_relu)
                return {g: a.T for g, a in out.items()}

            return {g: a.T for g, a in
                    _in_chunks(cols_block, (pt2, vars2), col_chunk).items()}

        # Memory grows linearly, not quadratically, with the block: each step
        # holds at most ``step_entries`` pair-covariance entries per array.
        return _in_chunks(rows_block, (pt1, vars1), row_chunk)
    n = x1.shape[0]
    rows, cols = np.triu_indices(n)

    def flat_block(args):
        p1, p2, v1, v2 = args
        return pairs(net, p1, p2, v1, v2, in_channels, get,
                     _flat_pairing(full), spatial)

    out = _in_chunks(flat_block, (pt1[rows], pt1[cols],
                                  [v[rows] for v in vars1],
                                  [v[cols] for v in vars1]),
                     pairs_per_step)
    result = {}
    for g, values in out.items():
        mat = jnp.zeros((n, n), values.dtype).at[rows, cols].set(values)
        result[g] = mat.at[cols, rows].set(values)
    return result

