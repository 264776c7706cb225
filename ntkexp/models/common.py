"""Shared building blocks for the architectures in :mod:`ntkexp.models`.

Every model function takes the same keyword arguments ``W_std``, ``b_std``,
``activation`` and ``parameterization`` and validates them here, so that a bad
config value fails with one line naming the problem and the valid choices.

Conventions (all models):

* ``W_std`` is the weight standard deviation sigma_w: a layer computes
  ``sigma_w / sqrt(fan_in) * W x + sigma_b * b`` with ``W, b ~ N(0, 1)`` under the
  NTK parameterization (Jacot et al. 2018), or ``W x + b`` with
  ``W ~ N(0, sigma_w^2 / fan_in)``, ``b ~ N(0, sigma_b^2)`` under the standard
  parameterization (Sohl-Dickstein et al. 2020). ``fan_in`` is the number of
  input channels times the filter size.
* ``b_std`` is sigma_b; ``None`` (YAML ``null``) means the layers have no biases
  at all (no bias parameters), ``0.0`` means zero-variance biases that exist as
  trainable parameters.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any, Callable, Optional, Sequence

import jax

from neural_tangents import stax

# neural-tangents' FanIn layers warn at every kernel call that they assume
# independent branches, whatever the branches are. Every residual block of
# ntkexp's models qualifies (one branch ends in a Dense / Conv with fresh
# zero-mean weights, so the cross-covariance vanishes; their kernels are
# tested against Monte Carlo estimates of the finite nets), and the line was
# printed on every ResNet and WRN run. Only that message, from that module.
warnings.filterwarnings(
    'ignore', message='`FanIn` layers assume independent inputs',
    category=UserWarning, module=r'neural_tangents\._src\.stax\.branching')

# Activations with closed-form (or exactly computed) infinite-width kernels in
# neural-tangents. The values build a fresh stax layer.
ACTIVATIONS: dict[str, Callable[[], Any]] = {
    'relu': stax.Relu,
    'erf': stax.Erf,
    'gelu': stax.Gelu,
    'abs': stax.Abs,
    'sin': stax.Sin,
}

PARAMETERIZATIONS = ('ntk', 'standard')


def check_int(model: str, key: str, value: Any, minimum: int = 1,
              choices: Optional[Sequence[int]] = None) -> int:
    """Returns ``value`` as an int or raises a one-line ``ValueError``.

    Args:
        model: model name used in the message.
        key: config key used in the message.
        value: the value to check.
        minimum: smallest allowed value.
        choices: if given, the allowed values.

    Returns:
        The validated integer.

    Raises:
        ValueError: ``value`` is not an integer, is below ``minimum`` or is not in
            ``choices``.
    """
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, Real) and float(value).is_integer():
        value, ok = int(value), True
    if choices is not None:
        if not ok or value not in choices:
            raise ValueError(
                f"model '{model}': {key}={value!r} is not supported; "
                f"valid choices: {', '.join(map(str, choices))}.")
        return int(value)
    if not ok or value < minimum:
        raise ValueError(
            f"model '{model}': {key} must be an integer >= {minimum}, "
            f"got {value!r}.")
    return int(value)


def check_float(model: str, key: str, value: Any, allow_none: bool = False,
                positive: bool = False) -> Optional[float]:
    """Returns ``value`` as a finite non-negative float (or None) or raises.

    Args:
        model: model name used in the message.
        key: config key used in the message.
        value: the value to check.
        allow_none: whether ``None`` is allowed (e.g. ``b_std: null``).
        positive: require a strictly positive value.

    Returns:
        The validated float, or None.

    Raises:
        ValueError: not a finite number, negative, or zero when ``positive``.
    """
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, Real)
            or not math.isfinite(value) or value < 0
            or (positive and value == 0)):
        bound = '> 0' if positive else '>= 0'
        extra = ' or null (no biases)' if allow_none else ''
        raise ValueError(
            f"model '{model}': {key} must be a finite number {bound}{extra}, "
            f"got {value!r}.")
    return float(value)


def check_choice(model: str, key: str, value: Any,
                 choices: Sequence[str]) -> str:
    """Returns the lower-cased ``value`` if it is one of ``choices``.

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(
            f"model '{model}': unknown {key} {value!r}; valid choices: "
            f"{', '.join(choices)}.")
    return value.lower()


def common_hparams(model: str, *, width: Any, W_std: Any, b_std: Any,
                   activation: Any, parameterization: Any,
                   out_dim: Any) -> dict[str, Any]:
    """Validates the keyword arguments every model shares.

    Args:
        model: model name used in error messages.
        width: hidden units / channels, an integer >= 1.
        W_std: weight standard deviation, > 0.
        b_std: bias standard deviation >= 0, or None for no biases.
        activation: one of :data:`ACTIVATIONS`.
        parameterization: ``'ntk'`` or ``'standard'``.
        out_dim: number of outputs, an integer >= 1.

    Returns:
        A dict with the validated values under the same keys.
    """
    return dict(
        width=check_int(model, 'width', width),
        W_std=check_float(model, 'W_std', W_std, positive=True),
        b_std=check_float(model, 'b_std', b_std, allow_none=True),
        activation=check_choice(model, 'activation', activation,
                                tuple(ACTIVATIONS)),
        parameterization=check_choice(model, 'parameterization',
                                      parameterization, PARAMETERIZATIONS),
        out_dim=check_int(model, 'out_dim', out_dim),
    )


def activation_layer(name: str):
    """Returns a fresh stax layer for the activation ``name``."""
    return ACTIVATIONS[name]()


@stax.layer
@stax.supports_masking(remask_kernel=False)
def Scale(alpha: float):
    """Multiplies its input by the constant ``alpha`` (no parameters).

    Used for the residual-branch scale of :func:`ntkexp.models.resnet`. Unlike
    folding ``alpha`` into the weights' standard deviation, this scales the
    branch's contribution to the NTK by ``alpha**2`` under both
    parameterizations, exactly as ``y = x + alpha * f(x)`` does for the finite
    network. A scaled Gaussian stays Gaussian, so ``is_gaussian`` is kept (it is
    needed by ``FanInSum``).

    Args:
        alpha: the scale.

    Returns:
        ``(init_fn, apply_fn, kernel_fn)``.
    """
    a2 = float(alpha) ** 2

    def init_fn(rng, input_shape):
        del rng
        return input_shape, ()

    def apply_fn(params, inputs, **kwargs):
        del params, kwargs
        return alpha * inputs

    def kernel_fn(k, **kwargs):
        del kwargs

        def scale(x):
            return None if x is None else a2 * x

        return k.replace(cov1=scale(k.cov1), nngp=scale(k.nngp),
                         cov2=scale(k.cov2), ntk=scale(k.ntk))

    return init_fn, apply_fn, kernel_fn


def count_params(params: Any) -> int:
    """Number of scalar parameters in a parameter pytree.

    Args:
        params: parameters as returned by a model's ``init_fn`` (``None``
            entries, e.g. absent biases, count as zero).

    Returns:
        The total number of scalars.
    """
    return int(sum(math.prod(getattr(leaf, 'shape', ()))
                   for leaf in jax.tree_util.tree_leaves(params)))
