"""Wide residual networks WRN-depth-k (``model=wrn``).

Zagoruyko & Komodakis 2016, "Wide Residual Networks", without batch
normalisation or dropout (neither has an infinite-width kernel here). Two
block styles (``block_style``):

* ``reference`` (default): the blocks of the paper's reference code, a 1x1
  projection of ``act(x)`` where channels or resolution change, an activation
  before the final pooling.
* ``neural_tangents``: the ``WideResnet`` of neural-tangents' README (Novak et
  al. 2020), whose kernel differs: every group's first block, the first
  group's too, has a shortcut that is a 3x3 strided convolution of the block's
  raw input, no activation precedes the final pooling, and the readout is
  ``Dense(out_dim, 1., 0.)``. ``model=wrn_nt`` is that network exactly
  (``W_std = 1``); ntkexp's fast WRN kernel has the reference blocks, so this
  style uses neural-tangents' kernel.
"""

from __future__ import annotations

from typing import Optional

from neural_tangents import stax

from ntkexp.fastconv import select as fastconv
from ntkexp.models.common import activation_layer, check_int, common_hparams
from ntkexp.models.inputs import check_input, with_input_check


def wrn_blocks_per_group(depth: int) -> int:
    """Blocks per group of WRN-``depth``: ``(depth - 4) / 6``.

    Raises:
        ValueError: ``(depth - 4) % 6 != 0`` or ``depth < 10``.
    """
    ok = (isinstance(depth, int) and not isinstance(depth, bool)
          and depth >= 10 and (depth - 4) % 6 == 0)
    if not ok:
        raise ValueError(
            f"model 'wrn': depth={depth!r} is not a WRN depth; it must satisfy "
            '(depth - 4) % 6 == 0 with depth >= 10: 10, 16, 22, 28, 34, 40, ...')
    return (depth - 4) // 6


def _block(channels: int, stride: int, project: bool, act: str, lin: dict):
    """One pre-activation basic block: two 3x3 convolutions and a shortcut.

    Without projection: ``x + conv(act(conv(act(x))))``. With projection (the
    first block of a group whose channels or resolution change), both paths
    start from ``act(x)`` and the shortcut is a strided 1x1 convolution, as in
    the reference WRN code.
    """
    conv3 = dict(padding='SAME', **lin)
    main = stax.serial(
        stax.Conv(channels, (3, 3), (stride, stride), **conv3),
        activation_layer(act),
        stax.Conv(channels, (3, 3), **conv3))
    if project:
        shortcut = stax.Conv(channels, (1, 1), (stride, stride), **conv3)
        return stax.serial(activation_layer(act), stax.FanOut(2),
                           stax.parallel(main, shortcut), stax.FanInSum())
    return stax.serial(stax.FanOut(2),
                       stax.parallel(stax.serial(activation_layer(act), main),
                                     stax.Identity()),
                       stax.FanInSum())


def _nt_block(channels: int, stride: int, shortcut_conv: bool, act: str,
              lin: dict):
    """neural-tangents' README ``WideResnetBlock``: ``conv(act(conv(act(x))))``
    plus ``x``, or plus a strided 3x3 convolution of the raw ``x`` in the
    first block of a group (``channel_mismatch=True`` there)."""
    conv3 = dict(padding='SAME', **lin)
    main = stax.serial(
        activation_layer(act),
        stax.Conv(channels, (3, 3), (stride, stride), **conv3),
        activation_layer(act),
        stax.Conv(channels, (3, 3), **conv3))
    shortcut = (stax.Conv(channels, (3, 3), (stride, stride), **conv3)
                if shortcut_conv else stax.Identity())
    return stax.serial(stax.FanOut(2), stax.parallel(main, shortcut),
                       stax.FanInSum())


BLOCK_STYLES = ('reference', 'neural_tangents')


def wrn(*, depth: int = 10, width: int = 16, W_std: float = 2 ** 0.5,
        b_std: Optional[float] = None, activation: str = 'relu',
        parameterization: str = 'ntk', out_dim: int = 1, k: int = 1,
        fast_kernel: bool | str = 'auto', block_style: str = 'reference'):
    """Wide ResNet WRN-``depth``-``k`` (Zagoruyko & Komodakis 2016).

    ``Conv(width, 3x3)`` stem; three groups of ``n = (depth - 4) / 6``
    pre-activation basic blocks with ``width * k``, ``2 * width * k`` and
    ``4 * width * k`` channels and strides 1, 2, 2 (the first block of a group
    gets a 1x1 projection shortcut when its channels or resolution change);
    then ``activation -> GlobalAvgPool -> Dense(out_dim)``. ``width = 16`` is
    the paper's base width (groups of 16k, 32k and 64k channels). The
    convolutions have no biases in the reference code, hence ``b_std=None``.

    Args:
        depth: total depth; ``(depth - 4) % 6 == 0`` and ``depth >= 10``.
        width: base channels (16 in the paper) of the stem; groups use
            ``width * k * (1, 2, 4)``.
        W_std: weight standard deviation sigma_w.
        b_std: bias standard deviation sigma_b, or None for no biases.
        activation: one of ``relu``, ``erf``, ``gelu``, ``abs``, ``sin``.
        parameterization: ``ntk`` or ``standard``.
        out_dim: number of outputs (set from the dataset).
        k: widening factor (>= 1).
        fast_kernel: ``auto`` (default): the triple's ``kernel_fn`` is
            :mod:`ntkexp.fastconv.residual`'s recursion (any activation) in
            the NTK parameterisation, neural-tangents' otherwise; ``true``:
            the fast one or an error; ``false``: always neural-tangents.
        block_style: ``reference`` (Zagoruyko's code) or ``neural_tangents``
            (neural-tangents' README ``WideResnet``; see the module notes).

    Returns:
        The neural-tangents triple ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: an invalid hyper-parameter, with the valid choices.
    """
    depth = check_int('wrn', 'depth', depth)
    n = wrn_blocks_per_group(depth)
    if block_style not in BLOCK_STYLES:
        raise ValueError(f"model 'wrn': block_style={block_style!r} is not one of "
                         f"{', '.join(BLOCK_STYLES)} (e.g. model.block_style="
                         'neural_tangents, or model=wrn_nt)')
    k = check_int('wrn', 'k', k)
    hp = common_hparams('wrn', width=width, W_std=W_std, b_std=b_std,
                        activation=activation,
                        parameterization=parameterization, out_dim=out_dim)
    lin = dict(W_std=hp['W_std'], b_std=hp['b_std'],
               parameterization=hp['parameterization'])
    act = hp['activation']
    layers = [stax.Conv(hp['width'], (3, 3), padding='SAME', **lin)]
    if block_style == 'neural_tangents':
        for group, stride in enumerate((1, 2, 2)):
            channels = hp['width'] * k * 2 ** group
            layers += [_nt_block(channels, stride if i == 0 else 1, i == 0, act,
                                 lin) for i in range(n)]
        # The README's AvgPool((8, 8)) + Flatten on 32x32 inputs; for any side.
        layers += [stax.GlobalAvgPool(),
                   stax.Dense(hp['out_dim'], 1., 0.,
                              parameterization=hp['parameterization'])]
        triple = with_input_check(stax.serial(*layers), 'wrn', 'image')
        return fastconv.with_fast_kernel(
            triple, None, fast_kernel, 'wrn',
            'block_style=neural_tangents (the fast WRN kernel has the '
            'reference blocks)', check=lambda shape: check_input('wrn', shape))
    in_channels = hp['width']
    blocks = []
    for group, stride in enumerate((1, 2, 2)):
        channels = hp['width'] * k * 2 ** group
        for i in range(n):
            s = stride if i == 0 else 1
            project = i == 0 and (channels != in_channels or s != 1)
            layers += [_block(channels, s, project, act, lin)]
            blocks.append((s, project))
            in_channels = channels
    layers += [activation_layer(act), stax.GlobalAvgPool(),
               stax.Dense(hp['out_dim'], **lin)]
    triple = with_input_check(stax.serial(*layers), 'wrn', 'image')
    net, reason = fastconv.wrn_net(
        blocks=tuple(blocks), W_std=hp['W_std'], b_std=hp['b_std'],
        activation=act, parameterization=hp['parameterization'])
    return fastconv.with_fast_kernel(
        triple, net, fast_kernel, 'wrn', reason,
        check=lambda shape: check_input('wrn', shape))
