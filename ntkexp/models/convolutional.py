"""Convolutional networks: CNN-VEC / CNN-GAP (``model=cnn``) and Myrtle
(``model=myrtle``).

Inputs are NHWC images ``(N, H, W, C)``. All convolutions are stride 1 with
``SAME`` zero padding. The infinite-width kernels are the CNN-GP (Novak et al.
2019) and the CNTK (Arora et al. 2019, "On Exact Computation with an
Infinitely Wide Neural Net"); Lee et al. 2020 ("Finite Versus Infinite Neural
Networks: an Empirical Study") compare both readouts against finite networks.
"""

from __future__ import annotations

from typing import Optional

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


def readout_layer(readout: str):
    """``Flatten`` (CNN-VEC) or ``GlobalAvgPool`` (CNN-GAP)."""
    return stax.Flatten() if readout == 'flatten' else stax.GlobalAvgPool()


def cnn(*, depth: int = 4, width: int = 64, W_std: float = 2 ** 0.5,
        b_std: Optional[float] = 0.1, activation: str = 'relu',
        parameterization: str = 'ntk', out_dim: int = 1,
        filter_size: int = 3, readout: str = 'gap',
        fast_kernel: bool | str = 'auto'):
    """Convolutional network with a ``flatten`` (CNN-VEC) or ``gap`` readout.

    Layers: ``[Conv(width, filter_size x filter_size, SAME) -> activation] *
    depth -> Flatten | GlobalAvgPool -> Dense(out_dim)``, the CNN-VEC and
    CNN-GAP networks of Lee et al. 2020 and Arora et al. 2019 (CNTK-V / CNTK-GAP).

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
    hp = common_hparams('cnn', width=width, W_std=W_std, b_std=b_std,
                        activation=activation,
                        parameterization=parameterization, out_dim=out_dim)
    lin = dict(W_std=hp['W_std'], b_std=hp['b_std'],
               parameterization=hp['parameterization'])
    layers = []
    for _ in range(depth):
        layers += [stax.Conv(hp['width'], (filter_size, filter_size),
                             padding='SAME', **lin),
                   activation_layer(hp['activation'])]
    layers += [readout_layer(readout), stax.Dense(hp['out_dim'], **lin)]
    triple = with_input_check(stax.serial(*layers), 'cnn', 'image')
    net, reason = fastconv.cnn_net(
        depth=depth, W_std=hp['W_std'], b_std=hp['b_std'],
        activation=hp['activation'], parameterization=hp['parameterization'],
        width=hp['width'], filter_size=filter_size, readout=readout)
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
