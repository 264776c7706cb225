"""Convolutional networks: CNN-VEC / CNN-GAP (``model=cnn``), their locally
connected twin LCN (``model=lcn``: ``cnn`` with ``weight_sharing=false``) and
Myrtle (``model=myrtle``).

Inputs are NHWC images ``(N, H, W, C)``. All convolutions are stride 1 with
``SAME`` zero padding. The infinite-width kernels are the CNN-GP (Novak et al.
2019) and the CNTK (Arora et al. 2019, "On Exact Computation with an
Infinitely Wide Neural Net"); Lee et al. 2020 ("Finite Versus Infinite Neural
Networks: an Empirical Study") compare both readouts against finite networks.
"""

from __future__ import annotations

from typing import Optional

import jax.numpy as jnp
from neural_tangents import stax

from ntkexp.fastconv import select as fastconv
from ntkexp.models.common import (activation_layer, check_choice, check_int,
                                  common_hparams)
from ntkexp.models.inputs import check_input, with_input_check

READOUTS = ('flatten', 'gap')

# Convolutions per stage of Myrtle-5/7/10 (Shankar et al. 2020), as in the
# neural-tangents Myrtle example: stage sizes [a, b, c], plus the readout layer.
MYRTLE_STAGES: dict[int, tuple[int, int, int]] = {
    5: (2, 1, 1),
    7: (2, 2, 2),
    10: (3, 3, 3),
}


def conv_local(out_chan: int, filter_size: int, *, W_std: float,
               b_std: Optional[float], parameterization: str):
    """``stax.ConvLocal`` (SAME, stride 1) with a faster ``apply_fn``.

    The ``init_fn`` and ``kernel_fn`` are neural-tangents'. Its ``apply_fn``
    calls ``lax.conv_general_dilated_local``, whose patch extraction is a
    convolution with ``filter_size^2 * C`` output channels: on a CPU a
    training step of a depth-4 LCN took 4.6-6x longer than with the patches
    taken here as ``filter_size^2`` shifted slices (measured on 8x8 and 32x32
    images, widths 16 and 64). The result is the same function of the same
    parameters (tests/test_models.py): patch features in neural-tangents'
    ``(C, fh, fw)`` order, weights ``(H, W, C fh fw, out_chan)``, a bias per
    position and channel.
    """
    init_fn, _, kernel_fn = stax.ConvLocal(
        out_chan, (filter_size, filter_size), padding='SAME', W_std=W_std,
        b_std=b_std, parameterization=parameterization)
    pad = ((filter_size - 1) // 2, filter_size - 1 - (filter_size - 1) // 2)

    def apply_fn(params, inputs, **kwargs):
        del kwargs
        W, b = params
        n, h, w, c = inputs.shape
        padded = jnp.pad(inputs, ((0, 0), pad, pad, (0, 0)))
        patches = jnp.stack([padded[:, i:i + h, j:j + w, :]
                             for i in range(filter_size)
                             for j in range(filter_size)], axis=-1)
        patches = patches.reshape(n, h, w, c * filter_size ** 2)
        if parameterization == 'ntk':
            norm, b_scale = W_std / (c * filter_size ** 2) ** 0.5, b_std
        else:  # standard: W and b were drawn with their scales
            norm, b_scale = 1.0, 1.0
        out = norm * jnp.einsum('nhwk,hwko->nhwo', patches, W)
        return out if b is None else out + b_scale * b

    return init_fn, apply_fn, kernel_fn


def readout_layer(readout: str):
    """``Flatten`` (CNN-VEC) or ``GlobalAvgPool`` (CNN-GAP)."""
    return stax.Flatten() if readout == 'flatten' else stax.GlobalAvgPool()


def cnn(*, depth: int = 4, width: int = 64, W_std: float = 2 ** 0.5,
        b_std: Optional[float] = 0.1, activation: str = 'relu',
        parameterization: str = 'ntk', out_dim: int = 1,
        filter_size: int = 3, readout: str = 'gap',
        weight_sharing: bool = True, fast_kernel: bool | str = 'auto'):
    """Convolutional network with a ``flatten`` (CNN-VEC) or ``gap`` readout.

    Layers: ``[Conv(width, filter_size x filter_size, SAME) -> activation] *
    depth -> Flatten | GlobalAvgPool -> Dense(out_dim)``, the CNN-VEC and
    CNN-GAP networks of Lee et al. 2020 and Arora et al. 2019 (CNTK-V / CNTK-GAP).

    With ``weight_sharing=False`` every convolution is locally connected
    (``stax.ConvLocal``: the same receptive fields, an independent filter at
    each position), the LCN of Novak et al. 2019 ("Bayesian Deep
    Convolutional Networks with Many Channels are Gaussian Processes") and
    Lee et al. 2020 (Sec. 3: "equivariance is only beneficial for narrow
    networks far from the kernel regime"). With a ``flatten`` readout its
    NNGP and NTK equal CNN-VEC's: an infinitely wide CNN-VEC does not use
    its weight sharing, a finite one can.

    Args:
        depth: number of convolutional layers (>= 1).
        width: channels per convolutional layer.
        W_std: weight standard deviation sigma_w.
        b_std: bias standard deviation sigma_b, or None for no biases.
        activation: one of ``relu``, ``erf``, ``gelu``, ``abs``, ``sin``.
        parameterization: ``ntk`` or ``standard``.
        out_dim: number of outputs (set from the dataset).
        filter_size: side of the square filters (>= 1).
        readout: ``flatten`` (CNN-VEC) or ``gap`` (global average pooling).
        weight_sharing: ``True`` (convolutions) or ``False`` (locally
            connected layers, LCN; neural-tangents' kernels).
        fast_kernel: ``auto`` (default): the triple's ``kernel_fn`` is
            :mod:`ntkexp.fastconv`'s recursion (any activation) for
            ``readout=gap`` and neural-tangents' for ``flatten`` (faster
            there); ``true``: the fast one; ``false``: always
            neural-tangents; ``pallas*``: with Pallas steps (ReLU only).

    Returns:
        The neural-tangents triple ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: an invalid hyper-parameter, with the valid choices.
    """
    depth = check_int('cnn', 'depth', depth)
    filter_size = check_int('cnn', 'filter_size', filter_size)
    readout = check_choice('cnn', 'readout', readout, READOUTS)
    if not isinstance(weight_sharing, bool):
        raise ValueError(f"model 'cnn': weight_sharing={weight_sharing!r} must be "
                         'true (convolutions) or false (locally connected, LCN)')
    hp = common_hparams('cnn', width=width, W_std=W_std, b_std=b_std,
                        activation=activation,
                        parameterization=parameterization, out_dim=out_dim)
    lin = dict(W_std=hp['W_std'], b_std=hp['b_std'],
               parameterization=hp['parameterization'])
    layers = []
    for _ in range(depth):
        conv = (stax.Conv(hp['width'], (filter_size, filter_size),
                          padding='SAME', **lin) if weight_sharing
                else conv_local(hp['width'], filter_size, **lin))
        layers += [conv, activation_layer(hp['activation'])]
    layers += [readout_layer(readout), stax.Dense(hp['out_dim'], **lin)]
    triple = with_input_check(stax.serial(*layers), 'cnn', 'image')
    if weight_sharing:
        net, reason = fastconv.cnn_net(
            depth=depth, W_std=hp['W_std'], b_std=hp['b_std'],
            activation=hp['activation'], parameterization=hp['parameterization'],
            width=hp['width'], filter_size=filter_size, readout=readout)
    else:
        net, reason = None, 'locally connected layers (weight_sharing=false)'
    return fastconv.with_fast_kernel(
        triple, net, fast_kernel, 'cnn', reason,
        check=lambda shape: check_input('cnn', shape))


def myrtle(*, depth: int = 5, width: int = 64, W_std: float = 2 ** 0.5,
           b_std: Optional[float] = None, activation: str = 'relu',
           parameterization: str = 'ntk', out_dim: int = 1,
           fast_kernel: bool | str = 'auto'):
    """Myrtle-5/7/10 of Shankar et al. 2020 ("Neural Kernels Without Tangents").

    Three stages of ``[Conv(width, 3x3, SAME) -> activation]`` with (2, 1, 1),
    (2, 2, 2) or (3, 3, 3) convolutions for depth 5, 7 or 10, a 2x2 average
    pool (stride 2) after the first two stages, then global average pooling and
    a ``Dense(out_dim)`` readout (depth = convolutions + readout).

    On 32x32 inputs the original's three final 2x2 average pools reduce the 8x8
    map to 1x1, which is exactly a global average; ``GlobalAvgPool`` computes
    the same thing and also works on smaller images (8x8 digits, 28x28 MNIST;
    at least 4x4). Shankar et al. use no biases, hence ``b_std=None``.

    Args:
        depth: 5, 7 or 10.
        width: channels per convolution.
        W_std: weight standard deviation sigma_w.
        b_std: bias standard deviation sigma_b, or None for no biases.
        activation: one of ``relu``, ``erf``, ``gelu``, ``abs``, ``sin``.
        parameterization: ``ntk`` or ``standard``.
        out_dim: number of outputs (set from the dataset).
        fast_kernel: ``auto`` (default), ``true`` or ``false``, as for
            :func:`cnn`.

    Returns:
        The neural-tangents triple ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: an invalid hyper-parameter (e.g. depth 6), with the valid
            choices.
    """
    depth = check_int('myrtle', 'depth', depth, choices=tuple(MYRTLE_STAGES))
    hp = common_hparams('myrtle', width=width, W_std=W_std, b_std=b_std,
                        activation=activation,
                        parameterization=parameterization, out_dim=out_dim)
    lin = dict(W_std=hp['W_std'], b_std=hp['b_std'],
               parameterization=hp['parameterization'])
    layers = []
    for stage, n_conv in enumerate(MYRTLE_STAGES[depth]):
        for _ in range(n_conv):
            layers += [stax.Conv(hp['width'], (3, 3), padding='SAME', **lin),
                       activation_layer(hp['activation'])]
        if stage < 2:
            layers += [stax.AvgPool((2, 2), strides=(2, 2))]
    layers += [stax.GlobalAvgPool(), stax.Dense(hp['out_dim'], **lin)]
    triple = with_input_check(stax.serial(*layers), 'myrtle', 'image')
    net, reason = fastconv.myrtle_net(
        stages=MYRTLE_STAGES[depth], W_std=hp['W_std'], b_std=hp['b_std'],
        activation=hp['activation'], parameterization=hp['parameterization'],
        width=hp['width'])
    return fastconv.with_fast_kernel(
        triple, net, fast_kernel, 'myrtle', reason,
        check=lambda shape: check_input('myrtle', shape))
