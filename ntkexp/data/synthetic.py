"""Generated regression data: circle, sphere and Gaussian inputs with chosen targets.

* circle -- Jacot et al. 2018 ("Neural Tangent Kernel", Fig. 1-2): inputs
  ``x = (cos g, sin g)`` on the unit circle, ``g`` uniform or on a grid.
* sphere -- uniform on S^(d-1), for kernel spectra (the NTK of an FC net is a
  dot-product kernel there, diagonal in spherical harmonics).
* gaussian -- ``x ~ N(0, scale^2 I)``; Jacot et al. 2018 Fig. 1 trains on
  ``f*(x) = x1 * x2`` with N(0, 1) inputs in d = 2.

Targets are named functions of ``x`` (:data:`TARGET_NAMES`, plus
``harmonic_<k>``); a list of names gives one target column each.
"""

from __future__ import annotations

import re

import numpy as np


def _col(x, i, name):
    if x.shape[1] <= i:
        raise ValueError(f'target {name!r} needs inputs of dimension >= {i + 1}, '
                         f'got d={x.shape[1]}.')
    return x[:, i]


_TARGETS = {
    'x1': lambda x: _col(x, 0, 'x1'),
    'x1*x2': lambda x: _col(x, 0, 'x1*x2') * _col(x, 1, 'x1*x2'),
    'linear': lambda x: x.sum(axis=1) / np.sqrt(x.shape[1]),
    'sin': lambda x: np.sin(np.pi * _col(x, 0, 'sin')),
    'relu': lambda x: np.maximum(_col(x, 0, 'relu'), 0.0),
    'norm': lambda x: np.linalg.norm(x, axis=1),
}
TARGET_NAMES = tuple(_TARGETS) + ('harmonic_<k>',)
_HARMONIC = re.compile(r'^harmonic_(\d+)$')


def zonal_harmonic(x: np.ndarray, k: int) -> np.ndarray:
    """Degree-k zonal spherical harmonic around e1, unit variance on the sphere.

    ``Y_k(x) = C_k^(l)(x1/|x|) / sqrt(E[C_k^(l)(t)^2])`` with the Gegenbauer
    polynomial ``C_k^(l)``, ``l = (d - 2) / 2`` (Legendre for d = 3; on the
    circle, d = 2, it is ``sqrt(2) cos(k g)``). Eigenfunctions of every
    dot-product kernel on the sphere, so a kernel's eigenvalue for degree k can
    be read off a fit to ``harmonic_k``.

    Args:
        x: inputs (N, d), d >= 2; only their direction matters.
        k: the degree, >= 0.

    Returns:
        (N,) values with mean 0 (k > 0) and mean square 1 under the uniform
        measure on S^(d-1).
    """
    d = x.shape[1]
    if d < 2:
        raise ValueError(f'harmonic_{k} needs d >= 2, got d={d}.')
    t = x[:, 0] / np.linalg.norm(x, axis=1)
    if k == 0:
        return np.ones_like(t)
    if d == 2:
        return np.sqrt(2.0) * np.cos(k * np.arccos(np.clip(t, -1.0, 1.0)))
    from scipy import special  # pylint: disable=import-outside-toplevel
    lam = (d - 2) / 2
    # h_k = int C_k^2 (1-t^2)^(lam-1/2) dt ; z = int (1-t^2)^(lam-1/2) dt.
    log_h = (np.log(np.pi) + (1 - 2 * lam) * np.log(2) + special.gammaln(k + 2 * lam)
             - special.gammaln(k + 1) - np.log(k + lam) - 2 * special.gammaln(lam))
    log_z = 0.5 * np.log(np.pi) + special.gammaln(lam + 0.5) - special.gammaln(lam + 1)
    return special.eval_gegenbauer(k, lam, t) / np.exp(0.5 * (log_h - log_z))


def target_values(x: np.ndarray, target: str | list[str] | tuple[str, ...]) -> np.ndarray:
    """Evaluates named target(s) on inputs ``x`` (N, d).

    Args:
        x: the inputs.
        target: one name from :data:`TARGET_NAMES` (``'x1*x2'``, ``'linear'``
            = sum(x)/sqrt(d), ``'sin'`` = sin(pi x1), ``'harmonic_2'``, ...) or a
            list of names.

    Returns:
        (N, number of targets) float64.

    Raises:
        ValueError: for an unknown name.
    """
    names = [target] if isinstance(target, str) else list(target)
    if not names:
        raise ValueError('target: give at least one target name.')
    columns = []
    for name in names:
        match = _HARMONIC.match(str(name))
        if match:
            columns.append(zonal_harmonic(x, int(match.group(1))))
        elif name in _TARGETS:
            columns.append(_TARGETS[name](x))
        else:
            raise ValueError(f'Unknown target {name!r}; choose one of '
                             f'{", ".join(TARGET_NAMES)} (e.g. harmonic_2), or a list.')
    return np.stack(columns, axis=1).astype(np.float64)


def _rngs(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent streams for train inputs, test inputs and label noise, so that
    changing ``n_train`` leaves the test set unchanged."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def circle_inputs(n: int, rng: np.random.Generator | None, grid: bool = False) -> np.ndarray:
    """``(cos g, sin g)`` with g uniform on [0, 2 pi), or ``g = 2 pi i / n`` on a grid."""
    if grid:
        g = 2 * np.pi * np.arange(n) / max(n, 1)
    else:
        g = rng.uniform(0.0, 2 * np.pi, n)
    return np.stack([np.cos(g), np.sin(g)], axis=1)


def sphere_inputs(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the unit sphere S^(d-1) in R^d."""
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def gaussian_inputs(n: int, d: int, rng: np.random.Generator,
                    scale: float = 1.0) -> np.ndarray:
    """``N(0, scale^2 I_d)``."""
    return scale * rng.standard_normal((n, d))


def generate(kind: str, n_train: int, n_test: int, seed: int, target, *,
             d: int = 2, grid: bool = False, scale: float = 1.0,
             noise: float = 0.0):
    """Generates ``(x_train, y_train, x_test, y_test)`` in float64.

    Args:
        kind: 'circle', 'sphere' or 'gaussian'.
        n_train: training points.
        n_test: test points.
        seed: the seed (train and test streams are independent).
        target: target name(s), see :func:`target_values`.
        d: input dimension (sphere, gaussian).
        grid: circle only: evenly spaced test points.
        scale: gaussian only: input standard deviation.
        noise: standard deviation of Gaussian noise added to training targets.
    """
    rng_train, rng_test, rng_noise = _rngs(seed)
    if kind == 'circle':
        x_train = circle_inputs(n_train, rng_train)
        x_test = circle_inputs(n_test, rng_test, grid=grid)
    elif kind == 'sphere':
        x_train = sphere_inputs(n_train, d, rng_train)
        x_test = sphere_inputs(n_test, d, rng_test)
    elif kind == 'gaussian':
        x_train = gaussian_inputs(n_train, d, rng_train, scale)
        x_test = gaussian_inputs(n_test, d, rng_test, scale)
    else:
        raise ValueError(f'Unknown generated dataset {kind!r}.')
    y_train = target_values(x_train, target)
    y_test = target_values(x_test, target)
    if noise:
        if noise < 0:
            raise ValueError(f'noise must be >= 0, got {noise}.')
        y_train = y_train + noise * rng_noise.standard_normal(y_train.shape)
    return x_train, y_train, x_test, y_test
