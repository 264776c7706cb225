"""Fully connected networks (``model=fc``).

The infinite-width limits of these networks are the NNGP (Neal 1996; Lee et al.
2018; Matthews et al. 2018) and the NTK (Jacot et al. 2018, "Neural Tangent
Kernel: Convergence and Generalization in Neural Networks"). For ReLU the
kernels have the closed arc-cosine form of Cho & Saul 2009 (see Arora et al.
2019, "On Exact Computation with an Infinitely Wide Neural Net", for the NTK
recursion); ``tests/test_models.py`` checks them against it.
"""

from __future__ import annotations

from typing import Any, Optional

from neural_tangents import stax

from ntkexp.fastconv import dense
from ntkexp.models.common import activation_layer, check_int, common_hparams
from ntkexp.models.inputs import check_input, with_input_check


def fc(*, depth: int = 3, width: int = 512, W_std: float = 2 ** 0.5,
       b_std: Optional[float] = 0.1, activation: str = 'relu',
       parameterization: str = 'ntk', out_dim: int = 1,
       fast_kernel: Any = 'auto'):
    """Fully connected network: ``depth`` hidden layers of ``width`` units.

    Layers: ``Flatten -> [Dense(width) -> activation] * depth -> Dense(out_dim)``.
    The leading ``Flatten`` makes image inputs ``(N, H, W, C)`` equivalent to
    their flattened vectors ``(N, H*W*C)`` (same network, same kernels). Every
    ``Dense`` layer, the readout included, uses ``W_std`` and ``b_std``, as in
    Lee et al. 2020 ("Finite Versus Infinite Neural Networks: an Empirical
    Study"). Defaults: ReLU with ``W_std = sqrt(2)`` (variance-preserving He
    scale) and ``b_std = 0.1`` (the bias scale beta = 0.1 of Jacot et al. 2018).

    Args:
        depth: number of hidden layers (>= 0; 0 is a linear model).
        width: units per hidden layer (>= 1; ignored by the NTK-parameterized
            infinite-width kernels).
        W_std: weight standard deviation sigma_w.
        b_std: bias standard deviation sigma_b, or None for no biases.
        activation: one of ``relu``, ``erf``, ``gelu``, ``abs``, ``sin``.
        parameterization: ``ntk`` (Jacot et al. 2018) or ``standard``
            (Sohl-Dickstein et al. 2020).
        out_dim: number of outputs (set from the dataset).
        fast_kernel: ``auto`` (default): in the NTK parameterisation the
            triple's ``kernel_fn`` is :mod:`ntkexp.fastconv.dense`'s recursion
            (one compiled layer, scanned: the compile time does not grow with
            the depth), neural-tangents' otherwise; ``true``: the recursion or
            an error; ``false``: always neural-tangents.

    Returns:
        The neural-tangents triple ``(init_fn, apply_fn, kernel_fn)``.

    Raises:
        ValueError: an invalid hyper-parameter, with the valid choices.
    """
    depth = check_int('fc', 'depth', depth, minimum=0)
    hp = common_hparams('fc', width=width, W_std=W_std, b_std=b_std,
                        activation=activation,
                        parameterization=parameterization, out_dim=out_dim)
    affine = dict(W_std=hp['W_std'], b_std=hp['b_std'],
                  parameterization=hp['parameterization'])
    layers = [stax.Flatten()]
    for _ in range(depth):
        layers += [stax.Dense(hp['width'], **affine),
                   activation_layer(hp['activation'])]
    layers += [stax.Dense(hp['out_dim'], **affine)]
    triple = with_input_check(stax.serial(*layers), 'fc', 'any')
    net, reason = dense.dense_net(
        kind='fc', depth=depth, W_std=hp['W_std'], b_std=hp['b_std'],
        activation=hp['activation'], parameterization=hp['parameterization'])
    return dense.with_dense_kernel(triple, net, fast_kernel, 'fc', reason,
                                   check=lambda shape: check_input(triple[2], shape))
