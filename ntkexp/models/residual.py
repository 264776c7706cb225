"""Residual networks with a residual-branch scale (``model=resnet``).

The ResNTK studied by Huang et al. 2020 ("Why Do Deep Residual Networks
Generalize Better than Deep Feedforward Networks? -- A Neural Tangent Kernel
Perspective") and Belfer et al. 2021 ("Spectral Analysis of the Neural Tangent
Kernel for Deep Residual Networks"). Both write the network as

    x_0 = V_0 x,
    x_l = x_{l-1} + alpha * V_l sigma(W_l x_{l-1}),   l = 1..L,
    f(x) = v^T x_L,

with ``W_l`` scaled by ``c_w = 2`` (ReLU, He scale) and the linear layers
``V_0, V_l, v`` by ``c_u = 1``; Huang et al. take ``alpha = L^(-gamma)``,
``1/2 <= gamma <= 1``. We implement exactly ``y = x + alpha * f(x)`` (no
``1 / sqrt(1 + alpha^2)`` rescaling) by default: ``W_std`` is sqrt(c_w),
``V_std`` is sqrt(c_u). ``normalize=True`` takes
``y = (x + alpha * f(x)) / sqrt(1 + alpha^2)`` instead, which keeps the
forward variance for ReLU at the He scale (``W_std^2 = 2``, ``V_std = 1``):
the branch then adds ``alpha^2`` times the trunk's variance, which the
rescaling takes away, so the output's scale no longer grows with alpha and
depth. The trunk carries no activation (identity skip path, as in the
pre-activation ResNets of He et al. 2016); the activation lives in the branch.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from neural_tangents import stax

from ntkexp.fastconv import dense
from ntkexp.fastconv import select as fastconv
from ntkexp.models.common import (Scale, activation_layer, check_choice,
                                  check_float, check_int, common_hparams)
from ntkexp.models.convolutional import READOUTS, readout_layer
from ntkexp.models.inputs import check_input, with_input_check

LAYOUTS = ('flat', 'image')


def resnet(*, depth: int = 4, width: int = 512, W_std: float = 2 ** 0.5,
           b_std: Optional[float] = None, activation: str = 'relu',
           parameterization: str = 'ntk', out_dim: int = 1,
           alpha: float = 0.5, V_std: float = 1.0, layout: str = 'flat',
           filter_size: int = 3, readout: str = 'gap',
           fast_kernel: Any = 'auto', alpha_gamma: Optional[float] = None,
           normalize: bool = False):
    """Residual network ``x_l = x_{l-1} + alpha * V sigma(W x_{l-1})``.

    ``layout='flat'``: ``Flatten -> Dense(width) -> depth blocks of
    [x + alpha * Dense(width) activation Dense(width) x] -> Dense(out_dim)``;
    takes vectors ``(N, d)`` or images (flattened), as in Huang et al. 2020 and
    Belfer et al. 2021. ``layout='image'``: the same with ``filter_size`` x
    ``filter_size`` SAME convolutions of ``width`` channels, then a ``gap``
    (global average pooling) or ``flatten`` readout; needs ``(N, H, W, C)``.

    The layer before the activation uses ``W_std``; the linear layers (input
    embedding ``V_0``, branch output ``V_l``, readout ``v``) use ``V_std``.
    The default ``alpha = 0.5 = L^(-1/2)`` for ``L = depth = 4`` is the
    ``gamma = 1/2`` scaling of Huang et al. 2020; ``alpha_gamma`` sets
    ``alpha = depth^(-alpha_gamma)`` for every depth, so that a sweep over
    ``depth`` keeps that scaling. Belfer et al. use no biases, hence
    ``b_std=None``.

    Args:
        depth: number of residual blocks (>= 1).
        width: hidden units (flat) or channels (image).
        W_std: weight standard deviation of the pre-activation layers.
        b_std: bias standard deviation of every layer, or None for no biases.
        activation: one of ``relu``, ``erf``, ``gelu``, ``abs``, ``sin``.
        parameterization: ``ntk`` or ``standard``.
        out_dim: number of outputs (set from the dataset).
        alpha: residual-branch scale (>= 0); 0 makes the network linear.
        V_std: weight standard deviation of the linear layers.
        layout: ``flat`` (vectors or flattened images) or ``image``.
        filter_size: filter side for ``layout='image'``.
        readout: ``gap`` or ``flatten`` for ``layout='image'``.
        fast_kernel: ``auto`` (default): the triple's ``kernel_fn`` is
            :mod:`ntkexp.fastconv.residual`'s recursion for ``layout=image``,
            ``readout=gap`` in the NTK parameterisation (any activation),
            neural-tangents' otherwise; ``true``: the fast one or an error;
            ``false``: always neural-tangents. ``layout=flat`` in the NTK
            parameterisation: :mod:`ntkexp.fastconv.dense`'s recursion (one
            compiled block, scanned over the depth).
        alpha_gamma: None (use ``alpha``) or ``gamma >= 0``: then
            ``alpha = depth^(-gamma)`` replaces ``alpha`` (Huang et al. 2020,
            ``alpha = L^(-gamma)``).
        normalize: divide each block's sum by ``sqrt(1 + alpha^2)``, so that
            ``x_l = (x_{l-1} + alpha V_l sigma(W_l x_{l-1})) / sqrt(1 + alpha^2)``
            (variance-preserving for ReLU at ``W_std^2 = 2``, ``V_std = 1``);
            both fast recursions (dense and image) have it.

    Returns:
        The neural-tangents triple ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: an invalid hyper-parameter, with the valid choices.
    """
    depth = check_int('resnet', 'depth', depth)
    alpha = check_float('resnet', 'alpha', alpha)
    if alpha_gamma is not None:
        alpha = float(depth) ** -check_float('resnet', 'alpha_gamma', alpha_gamma)
    V_std = check_float('resnet', 'V_std', V_std, positive=True)
    if not isinstance(normalize, bool):
        raise ValueError(f"model 'resnet': normalize must be true or false, "
                         f'not {normalize!r}')
    trunk_scale = 1.0 / math.sqrt(1.0 + alpha ** 2) if normalize else 1.0
    layout = check_choice('resnet', 'layout', layout, LAYOUTS)
    filter_size = check_int('resnet', 'filter_size', filter_size)
    readout = check_choice('resnet', 'readout', readout, READOUTS)
    hp = common_hparams('resnet', width=width, W_std=W_std, b_std=b_std,
                        activation=activation,
                        parameterization=parameterization, out_dim=out_dim)
    common = dict(b_std=hp['b_std'], parameterization=hp['parameterization'])
    if layout == 'flat':
        def linear(out, std):
            return stax.Dense(out, W_std=std, **common)
        head = [stax.Flatten()]
        tail = []
    else:
        def linear(out, std):
            return stax.Conv(out, (filter_size, filter_size), padding='SAME',
                             W_std=std, **common)
        head = []
        tail = [readout_layer(readout)]

    width = hp['width']
    layers = head + [linear(width, V_std)]
    # normalize: c (x + alpha f(x)) as c x + (c alpha) f(x), the same layers
    # as without it, so a seed draws the same weights either way.
    trunk = Scale(trunk_scale) if normalize else stax.Identity()
    for _ in range(depth):
        branch = stax.serial(linear(width, hp['W_std']),
                             activation_layer(hp['activation']),
                             linear(width, V_std), Scale(alpha * trunk_scale))
        layers += [stax.FanOut(2), stax.parallel(trunk, branch),
                   stax.FanInSum()]
    layers += tail + [stax.Dense(hp['out_dim'], W_std=V_std, **common)]
    triple = with_input_check(stax.serial(*layers), 'resnet',
                              'any' if layout == 'flat' else 'image')
    if layout == 'flat':
        net, reason = dense.dense_net(
            kind='resnet', depth=depth, W_std=hp['W_std'], b_std=hp['b_std'],
            activation=hp['activation'], parameterization=hp['parameterization'],
            alpha=alpha, V_std=V_std, trunk_scale=trunk_scale)
        return dense.with_dense_kernel(
            triple, net, fast_kernel, 'resnet', reason,
            check=lambda shape: check_input(triple[2], shape))
    net, reason = fastconv.resnet_net(
        depth=depth, alpha=alpha, W_std=hp['W_std'], V_std=V_std,
        b_std=hp['b_std'], activation=hp['activation'],
        parameterization=hp['parameterization'], layout=layout,
        filter_size=filter_size, readout=readout, trunk_scale=trunk_scale)
    return fastconv.with_fast_kernel(
        triple, net, fast_kernel, 'resnet', reason,
        check=lambda shape: check_input(triple[2], shape))
