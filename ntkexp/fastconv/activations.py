"""Dual activations: what one element-wise nonlinearity does to a covariance.

For centred Gaussian pre-activations ``(u, v)`` with covariance ``nngp`` and
variances ``v1``, ``v2``, an activation ``phi`` maps the covariance to
``E[phi(u) phi(v)]`` and multiplies the NTK by the derivative kernel
``E[phi'(u) phi'(v)]`` (Jacot et al. 2018, Eq. 6-7 for fully-connected nets;
Arora et al. 2019, Eq. 4-7 for convolutions, applied at every pair of
positions). Each :class:`Activation` gives both in closed form, written as
neural-tangents' ``stax`` writes them, so that the fast recursion agrees with
neural-tangents to rounding:

* ``relu`` and ``abs``: :class:`ABRelu` (``a min(x, 0) + b max(x, 0)``; the
  arc-cosine kernels of Cho & Saul 2009), ``arctan2`` as a vectorised
  polynomial (:func:`angle`);
* ``erf``: Williams 1997 ("Computing with infinite networks"), as
  ``stax.Erf()``;
* ``gelu``: Tsuchida et al. 2021 ("Avoiding Kernel Fixed Points: Computing with
  ELU and GELU Infinite Networks"), as ``stax.Gelu()``;
* ``sin``: ``E[sin u sin v] = (e^{-(v1 + v2)/2 + c} - e^{-(v1 + v2)/2 - c}) /
  2``, as ``stax.Sin()``.

Each also gives :meth:`Activation.diagonal`, the map of one image's variance
``Sigma(x, x)[p, p]`` (the pair step at ``nngp = v1 = v2``), which the per-image
variance recursion uses.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# Cephes' atan (S. L. Moshier): rational P/Q on |u| <= 0.66 for float64,
# polynomial on |u| <= tan(pi/8) for float32; both within 2 ulp on [0, 1].
_ATAN_P64 = (-8.750608600031904122785e-1, -1.615753718733365076637e1,
             -7.500855792314704667340e1, -1.228866684490136173410e2,
             -6.485021904942025371773e1)
_ATAN_Q64 = (2.485846490142306297962e1, 1.650270098316988542046e2,
             4.328810604912902668951e2, 4.853903996359136964868e2,
             1.945506571482613964425e2)
_ATAN_P32 = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1,
             -3.33329491539e-1)
_PI_4_LOW = 6.123233995736765886130e-17  # pi/4 - float64(pi/4)


def _atan_reduced(num: jax.Array, den: jax.Array) -> jax.Array:
    """``arctan(t)`` of ``t = num / den`` in ``[0, 1]``, in ``num``'s precision.

    XLA's CPU ``atan2`` is a scalar library call (about 30x slower than a
    polynomial); this is vectorised arithmetic, accurate to 2 ulp (Cephes'
    reduction ``t > t0 -> pi/4 + arctan((t - 1) / (t + 1))`` done as a single
    division ``(num - den) / (num + den)``).
    """
    f64 = num.dtype == jnp.float64
    big = num > (0.66 if f64 else 0.41421356237309503) * den
    u = (jnp.where(big, num - den, num) /
         jnp.where(big, num + den, jnp.where(den > 0, den, 1)))
    z = u * u
    if f64:
        p = _ATAN_P64[0]
        for c in _ATAN_P64[1:]:
            p = p * z + c
        q = z + _ATAN_Q64[0]
        for c in _ATAN_Q64[1:]:
            q = q * z + c
        r = u + u * (z * p / q)
        return jnp.where(big, np.pi / 4 + (r + 0.5 * _PI_4_LOW), r)
    p = _ATAN_P32[0]
    for c in _ATAN_P32[1:]:
        p = p * z + c
    r = u + u * z * p
    return jnp.where(big, np.float32(np.pi / 4) + r, r)


def angle(y: jax.Array, x: jax.Array) -> jax.Array:
    """``arctan2(y, x)`` for ``y >= 0`` (so in ``[0, pi]``), ``pi/2`` at 0/0.

    The value neural-tangents' ``_arctan2(y, x, fill_zero=pi/2)`` gives, to
    2 ulp: reduce to ``t = min / max`` in ``[0, 1]``, then reflect.
    """
    ax = jnp.abs(x)
    a = _atan_reduced(jnp.minimum(y, ax), jnp.maximum(y, ax))
    a = jnp.where(y > ax, np.pi / 2 - a, a)
    a = jnp.where(x < 0, np.pi - a, a)
    return jnp.where((y == 0) & (x == 0), np.pi / 2, a)


def relu(nngp: jax.Array, prod: jax.Array) -> tuple[jax.Array, jax.Array]:
    """ReLU arc-cosine step: ``(E[relu(u) relu(v)], E[relu'(u) relu'(v)])``.

    For ``u, v`` centred Gaussian with covariance ``nngp`` and variance product
    ``prod`` (Cho & Saul 2009; Arora et al. 2019, Eq. 4-5):
    ``(sqrt(prod - nngp^2) + (pi - theta) nngp) / 2 pi`` and ``(pi - theta) /
    2 pi`` with ``theta = arctan2(sqrt(prod - nngp^2), nngp)``, written as
    neural-tangents' ``ABRelu(0, 1)`` writes it (``theta = pi / 2`` where both
    arguments vanish).

    One deliberate difference: ``prod - nngp^2`` below ``32 eps prod`` is set
    to 0. That is below its rounding noise (XLA contracts ``prod - nngp^2``
    into a fused multiply-add, whose result is the rounding error of
    ``nngp^2`` when ``nngp^2 = prod``), and the square root would amplify the
    noise to ``sqrt(eps)``: neural-tangents' ``k(x, x)`` carries relative
    errors of about 1e-4 (float32) and 1e-10 (float64) on its diagonal from
    it. Here an image paired with itself gets ``theta = 0`` exactly.

    Args:
        nngp: pre-activation covariance.
        prod: product of the two pre-activation variances (broadcastable).

    Returns:
        ``(nngp_out, dot)``: the post-activation covariance and the derivative
        kernel that multiplies the NTK.
    """
    return ab_relu(nngp, prod, 0., 1.)


def signed_angle(y: jax.Array, x: jax.Array) -> jax.Array:
    """``arctan2(y, x)`` for ``x > 0`` (so in ``(-pi/2, pi/2)``), from
    :func:`angle` (vectorised; ``jnp.arctan2`` is a scalar call on CPUs)."""
    return jnp.copysign(angle(jnp.abs(y), x), y)


def ab_relu(nngp: jax.Array, prod: jax.Array, a: float,
            b: float) -> tuple[jax.Array, jax.Array]:
    """:func:`relu` for ``a min(x, 0) + b max(x, 0)`` (neural-tangents'
    ``ABRelu``): ``((a - b)^2 / 2 pi) sqrt(prod - nngp^2) + dot nngp`` and
    ``dot = (a^2 + b^2) / 2 - ((a - b)^2 / 2 pi) theta``, with the same
    treatment of correlation 1 (``prod - nngp^2 < 32 eps prod`` set to 0)."""
    gap = prod - nngp ** 2
    tol = 32 * jnp.finfo(gap.dtype).eps
    square_root = jnp.sqrt(jnp.where(gap > tol * prod, gap, 0.))
    angles = angle(square_root, nngp)
    factor = (a - b) ** 2 / (2 * jnp.pi)
    dot = (a ** 2 + b ** 2) / 2 - factor * angles
    return factor * square_root + dot * nngp, dot


@dataclasses.dataclass(frozen=True)
class Activation:
    """The dual of one activation (module docstring)."""

    def pair(self, nngp: jax.Array, v1: jax.Array,
             v2: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])``.

        Args:
            nngp: the pre-activation covariance ``E[u v]``.
            v1, v2: the variances ``E[u^2]``, ``E[v^2]``, broadcastable to
                ``nngp``.
        """
        raise NotImplementedError

    def diagonal(self, var: jax.Array) -> jax.Array:
        """``E[phi(u)^2]`` of a variance ``var = E[u^2]``."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class ABRelu(Activation):
    """``a min(x, 0) + b max(x, 0)``: ReLU ``(0, 1)``, absolute value
    ``(-1, 1)``."""
    a: float
    b: float

    def pair(self, nngp, v1, v2):
        return ab_relu(nngp, v1 * v2, self.a, self.b)

    def diagonal(self, var):
        # The pair step at theta = 0; for the ReLU 0.5 var exactly.
        return (self.a ** 2 + self.b ** 2) / 2 * var


@dataclasses.dataclass(frozen=True)
class Erf(Activation):
    """``erf(x)`` (``stax.Erf()``; Williams 1997): ``(2 / pi) arcsin(2 c /
    sqrt((1 + 2 v1) (1 + 2 v2)))``, derivative kernel ``(4 / pi) / sqrt((1 +
    2 v1) (1 + 2 v2) - 4 c^2)``."""

    def pair(self, nngp, v1, v2):
        prod = (1 + 2 * v1) * (1 + 2 * v2)
        square_root = jnp.sqrt(jnp.maximum(prod - 4 * nngp ** 2, 0.))
        factor = 2 / jnp.pi
        return (factor * signed_angle(2 * nngp, square_root),
                2 * factor / square_root)

    def diagonal(self, var):
        return 2 / jnp.pi * signed_angle(var, jnp.sqrt(var + 0.25))


@dataclasses.dataclass(frozen=True)
class Gelu(Activation):
    """``x Phi(x)`` (``stax.Gelu()``; Tsuchida et al. 2021, Sec. 4)."""

    def pair(self, nngp, v1, v2):
        prod = v1 * v2
        prod_plus_1 = (v1 + 1) * (v2 + 1)
        delta_squared = prod_plus_1 - nngp ** 2
        delta = jnp.sqrt(jnp.maximum(delta_squared, 0.))
        angles = signed_angle(nngp, delta)
        out = (nngp ** 2 + prod * delta_squared) / (prod_plus_1 * delta)
        out = (out + nngp * angles) / (2 * jnp.pi) + 0.25 * nngp
        first = 1 / delta_squared + (1 - prod) / prod_plus_1 + 1
        first = first * (nngp / delta / (2 * jnp.pi))
        return out, first + (0.25 + angles / (2 * jnp.pi))

    def diagonal(self, var):
        square_root = jnp.sqrt(1. + 2. * var)
        out = var / ((var + 1.) * square_root)
        out = (out + signed_angle(var, square_root) / 2) / jnp.pi
        return (out + 0.25) * var


@dataclasses.dataclass(frozen=True)
class Sin(Activation):
    """``sin(x)`` (``stax.Sin()``): ``E[sin u sin v] = (s1 - s2) / 2``,
    ``E[cos u cos v] = (s1 + s2) / 2``, with ``s1, s2 = exp(-(v1 + v2) / 2
    +- c)``."""

    def pair(self, nngp, v1, v2):
        total = v1 + v2
        s1 = jnp.exp(-0.5 * total + nngp)
        s2 = jnp.exp(-0.5 * total - nngp)
        return 0.5 * (s1 - s2), 0.5 * (s1 + s2)

    def diagonal(self, var):
        return 0.5 * (1. - jnp.exp(-2. * var))


#: The activations of :data:`ntkexp.models.common.ACTIVATIONS`, by name.
ACTIVATIONS: dict[str, Activation] = {
    'relu': ABRelu(0., 1.),
    'abs': ABRelu(-1., 1.),
    'erf': Erf(),
    'gelu': Gelu(),
    'sin': Sin(),
}


def get(name: str) -> Activation:
    """The :class:`Activation` called ``name``.

    Raises:
        ValueError: an unknown name (one line, the choices).
    """
    if name not in ACTIVATIONS:
        raise ValueError(f'unknown activation {name!r}; valid choices: '
                         f"{', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]
