"""Eigen-analysis of kernel Gram matrices and of dot-product kernels on spheres.

Used by :mod:`ntkexp.experiments.alignment`; plain numpy/scipy in float64.

Gram matrices (Kopitkov & Indelman 2019, "Neural Spectrum Alignment: Empirical
Study", Sec. 3; Jacot et al. 2018, "Neural Tangent Kernel", Sec. 5-6):

* :func:`eigh_desc`: eigenvalues in decreasing order and orthonormal
  eigenvectors ``u_1, u_2, ...`` of a symmetric ``K``.
* :func:`energy_fractions`: ``E_k(v) = sum_{i<=k} (u_i^T v)^2 / ||v||^2``, the
  fraction of a vector's energy in the top-``k`` eigenvectors. For ``c``
  outputs ``V`` is ``(n, c)`` and ``E_k(V) = sum_{i<=k} ||u_i^T V||^2 /
  ||V||_F^2`` (the eigenvectors of the output-traced kernel are shared by all
  outputs). ``E_n = 1`` and ``E_k`` is non-decreasing in ``k``.
* :func:`kernel_target_alignment`: ``A(K, Y) = <K, Y Y^T>_F / (||K||_F
  ||Y Y^T||_F)`` (Cristianini et al. 2002), which is ``y^T K y / (||K||_F
  ||y||^2)`` for one output; ``A(y y^T, y) = 1`` and ``|A| <= 1``.

Dot-product kernels on the sphere S^(d-1) (Funk-Hecke; Bietti & Mairal 2019,
"On the Inductive Bias of Neural Tangent Kernels", Sec. 3.2; Belfer et al.
2021, "Spectral Analysis of the Neural Tangent Kernel for Deep Residual
Networks", Sec. 3): a kernel ``K(x, x') = k(<x, x'>)`` on S^(d-1) with the
uniform *probability* measure sigma has the spherical harmonics of degree
``l`` as eigenfunctions, with multiplicity ``N(d, l)`` and eigenvalue

    lambda_l = c_d int_{-1}^{1} k(t) P_l(t) (1 - t^2)^((d - 3) / 2) dt,
    c_d = Gamma(d / 2) / (sqrt(pi) Gamma((d - 1) / 2)),

where ``P_l`` is the degree-``l`` Legendre (Gegenbauer) polynomial of dimension
``d`` normalised to ``P_l(1) = 1``. :func:`funk_hecke_eigenvalues` evaluates it
by Gauss-Jacobi quadrature with weight ``(1 - t^2)^((d - 3) / 2)`` (exact for
polynomial ``k`` of degree ``< 2 n_quad - l``). Mercer: ``k(1) = sum_l N(d, l)
lambda_l``. For ``n`` uniform points ``x_i``, the Gram matrix ``K / n`` has
eigenvalues that converge to the ``lambda_l`` (each ``N(d, l)`` times), and
:func:`degree_energies` tells which degree each Gram eigenvector belongs to.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import special


def eigh_desc(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors (columns) of a symmetric matrix.

    Args:
        kernel: ``(n, n)`` symmetric matrix; it is symmetrised
            (``(K + K^T) / 2``) and cast to float64 first.

    Returns:
        ``(evals, evecs)``: ``evals[i]`` is the ``(i + 1)``-th largest eigenvalue
        and ``evecs[:, i]`` its unit eigenvector.
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f'expected a square matrix, got shape {k.shape}')
    evals, evecs = np.linalg.eigh(0.5 * (k + k.T))
    return evals[::-1].copy(), evecs[:, ::-1].copy()


def _as_2d(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v[:, None] if v.ndim == 1 else v.reshape(v.shape[0], -1)


def k_grid(n: int, ks: Iterable[int] | None) -> list[int]:
    """The valid, sorted, distinct ``k`` of ``ks`` (``1 <= k <= n``), plus ``n``."""
    out = {int(k) for k in (ks or []) if 1 <= int(k) <= n}
    out.add(int(n))
    return sorted(out)


def cumulative_energy(evecs: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``E_k(v)`` for every ``k = 1..m`` (``m`` columns of ``evecs``).

    Args:
        evecs: ``(n, m)`` orthonormal columns, ordered by decreasing eigenvalue.
        v: ``(n,)`` vector or ``(n, c)`` matrix (one column per output).

    Returns:
        ``(m,)`` non-decreasing fractions; all NaN if ``v = 0``.
    """
    v = _as_2d(v)
    norm2 = float(np.sum(v * v))
    proj = np.asarray(evecs, np.float64).T @ v
    energy = np.cumsum(np.sum(proj * proj, axis=1))
    if norm2 == 0.0:
        return np.full(energy.shape, np.nan)
    return energy / norm2


def energy_fractions(evecs: np.ndarray, v: np.ndarray,
                     ks: Sequence[int]) -> np.ndarray:
    """``E_k(v) = sum_{i<=k} ||u_i^T v||^2 / ||v||^2`` for each ``k`` in ``ks``.

    Kopitkov & Indelman 2019, Sec. 3 (the energy of the target, the network's
    output and the residual in the top-``k`` eigenvectors of the NTK Gram
    matrix).

    Args:
        evecs: ``(n, m)`` eigenvectors by decreasing eigenvalue.
        v: ``(n,)`` or ``(n, c)``.
        ks: values ``1 <= k <= m``.

    Returns:
        ``(len(ks),)`` fractions in [0, 1].
    """
    cum = cumulative_energy(evecs, v)
    ks = [int(k) for k in ks]
    bad = [k for k in ks if not 1 <= k <= len(cum)]
    if bad:
        raise ValueError(f'k={bad} out of range 1..{len(cum)}')
    return cum[np.asarray(ks) - 1]


def kernel_target_alignment(kernel: np.ndarray, y: np.ndarray) -> float:
    """``<K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)`` (Cristianini et al. 2002).

    For one output this is ``y^T K y / (||K||_F ||y||^2)``, the alignment of
    Kopitkov & Indelman 2019. For ``c`` outputs the output-traced kernel is
    compared with ``Y Y^T``: numerator ``tr(Y^T K Y)``, and ``||Y Y^T||_F =
    ||Y^T Y||_F``.

    Args:
        kernel: ``(n, n)`` symmetric kernel matrix.
        y: ``(n,)`` or ``(n, c)`` targets.

    Returns:
        The alignment in [-1, 1] (in [0, 1] for a PSD kernel).
    """
    k = np.asarray(kernel, np.float64)
    y = _as_2d(y)
    numerator = float(np.sum(y * (k @ y)))
    denominator = float(np.linalg.norm(k) * np.linalg.norm(y.T @ y))
    return numerator / denominator if denominator > 0 else float('nan')


#: Rows of a kernel per step of :func:`centered_alignment` and
#: :func:`cosine_offdiagonal`: a few ``(ROW_CHUNK, n)`` arrays at a time
#: instead of copies of the whole ``(n, n)`` kernel (4 GB each at n = 23,000).
ROW_CHUNK = 1024


def _row_chunks(n: int):
    for start in range(0, n, ROW_CHUNK):
        yield slice(start, min(start + ROW_CHUNK, n))


def centered_alignment(kernel: np.ndarray, y: np.ndarray) -> float:
    """Centred kernel-target alignment (Cortes, Mohri & Rostamizadeh 2012).

    :func:`kernel_target_alignment` of ``H K H`` and ``H Y`` with ``H = I -
    11^T / n``: the constant direction, which dominates an uncentred NTK
    (and one-hot targets), is removed from both. ``H K H = K - r 1^T - 1 c^T
    + m`` (row means ``r``, column means ``c``, overall mean ``m``) is formed
    :data:`ROW_CHUNK` rows at a time.
    """
    k = np.asarray(kernel, np.float64)
    y = _as_2d(y)
    yc = y - y.mean(axis=0, keepdims=True)
    row_mean, col_mean = k.mean(axis=1), k.mean(axis=0)
    total = float(row_mean.mean())
    numerator = squares = 0.0
    for rows in _row_chunks(len(k)):
        block = k[rows] - row_mean[rows, None] - col_mean[None, :] + total
        numerator += float(np.sum(yc[rows] * (block @ yc)))
        squares += float(np.sum(block * block))
    denominator = float(np.sqrt(squares) * np.linalg.norm(yc.T @ yc))
    return numerator / denominator if denominator > 0 else float('nan')


def cosine_offdiagonal(kernel: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the kernel's off-diagonal cosines.

    The cosines are ``C_ij = K_ij / sqrt(K_ii K_jj)`` over the pairs ``i !=
    j``. They measure how far a kernel is from degenerate: the NTK of a deep
    fully connected ReLU network tends to the same value for every pair of
    distinct unit inputs as the depth grows (the degeneracy of Huang et al.
    2020, "Why Do Deep Residual Networks Generalize Better than Deep
    Feedforward Networks?"), so the standard deviation of ``C_ij`` falls to
    zero, while a ResNet's with branch scale ``alpha = L^(-gamma)`` keeps a
    spread. Two passes over :data:`ROW_CHUNK` rows at a time (the mean, then
    the squared deviations: no cancellation when the spread is tiny).

    Args:
        kernel: ``(n, n)`` kernel matrix with a positive diagonal, ``n >= 2``.

    Returns:
        ``(mean, std)`` of the ``n (n - 1)`` off-diagonal cosines.
    """
    k = np.asarray(kernel, np.float64)
    n = len(k)
    scale = np.sqrt(np.diag(k))

    def blocks():
        for rows in _row_chunks(n):
            cosines = k[rows] / (scale[rows, None] * scale[None, :])
            off = np.ones(cosines.shape, bool)
            off[np.arange(cosines.shape[0]), np.arange(n)[rows]] = False
            yield cosines[off]

    pairs = n * (n - 1)
    mean = sum(float(np.sum(c)) for c in blocks()) / pairs
    variance = sum(float(np.sum((c - mean) ** 2)) for c in blocks()) / pairs
    return mean, float(np.sqrt(variance))


# --- dot-product kernels on the sphere ------------------------------------


def harmonic_dimension(d: int, degree: int) -> int:
    """``N(d, l)``: the number of degree-``l`` spherical harmonics on S^(d-1).

    ``N(d, 0) = 1``, ``N(d, l) = (2l + d - 2) (l + d - 3)! / (l! (d - 2)!)``;
    ``N(2, l) = 2``, ``N(3, l) = 2l + 1``.
    """
    d, degree = int(d), int(degree)
    if d < 2 or degree < 0:
        raise ValueError(f'need d >= 2 and degree >= 0, got d={d}, l={degree}')
    if degree == 0:
        return 1
    return (2 * degree + d - 2) * math.comb(degree + d - 3, degree - 1) // degree


def legendre(d: int, lmax: int, t: np.ndarray) -> np.ndarray:
    """``P_l(t)`` for ``l = 0..lmax``: Gegenbauer polynomials with ``P_l(1) = 1``.

    Three-term recurrence ``(l + d - 2) P_{l+1} = (2l + d - 2) t P_l - l
    P_{l-1}`` (Chebyshev ``T_l`` for d = 2, Legendre for d = 3), stable on
    [-1, 1].

    Returns:
        ``(lmax + 1, len(t))``.
    """
    t = np.asarray(t, np.float64)
    out = np.empty((lmax + 1,) + t.shape)
    out[0] = 1.0
    if lmax >= 1:
        out[1] = t
    for l in range(1, lmax):
        out[l + 1] = ((2 * l + d - 2) * t * out[l] - l * out[l - 1]) / (l + d - 2)
    return out


def quadrature(d: int, n_quad: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes and weights for the density of ``t = <x, e>``.

    Weights are normalised so that ``sum(w) = 1``: ``sum_i w_i g(t_i)``
    approximates ``E_{x ~ sigma}[g(<x, e>)] = c_d int g(t) (1 - t^2)^((d-3)/2)
    dt``.
    """
    if d < 2:
        raise ValueError(f'd must be >= 2, got {d}')
    a = (d - 3) / 2
    nodes, weights = special.roots_jacobi(int(n_quad), a, a)
    return nodes, weights / np.sum(weights)


def funk_hecke_eigenvalues(kfun: Callable[[np.ndarray], np.ndarray], d: int,
                           lmax: int, n_quad: int = 2048) -> np.ndarray:
    """Mercer eigenvalues ``lambda_0..lambda_lmax`` of ``k(<x, x'>)`` on S^(d-1).

    Funk-Hecke formula (module docstring) for the uniform probability measure,
    by Gauss-Jacobi quadrature: ``lambda_l = sum_i w_i k(t_i) P_l(t_i)``.

    Args:
        kfun: ``k(t)`` for an array of ``t`` in [-1, 1].
        d: ambient dimension (the sphere is S^(d-1)), >= 2.
        lmax: largest degree.
        n_quad: quadrature nodes (use ``n_quad >> lmax``; a kernel with a
            ``(1 - t)^(1/2)`` singularity, like the ReLU NTK, converges
            algebraically in ``n_quad``).

    Returns:
        ``(lmax + 1,)`` eigenvalues, one per degree.
    """
    nodes, weights = quadrature(d, n_quad)
    values = np.asarray(kfun(nodes), np.float64).reshape(-1)
    return legendre(d, lmax, nodes) @ (weights * values)


def sphere_pair_inputs(d: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``x0 = e1`` and ``x_i = t_i e1 + sqrt(1 - t_i^2) e2`` with
    ``<x0, x_i> = t_i``, all on S^(d-1): ``(1, d)`` and ``(len(t), d)``."""
    t = np.asarray(t, np.float64)
    x0 = np.zeros((1, d))
    x0[0, 0] = 1.0
    x = np.zeros((len(t), d))
    x[:, 0] = t
    x[:, 1] = np.sqrt(np.clip(1.0 - t * t, 0.0, None))
    return x0, x


def sphere_points(n: int, d: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniform on S^(d-1): normalised standard Gaussians."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def degree_energies(x: np.ndarray, evecs: np.ndarray, lmax: int) -> np.ndarray:
    """Fraction of each Gram eigenvector in the degree-``l`` harmonics.

    For ``n`` points on S^(d-1) the matrix ``G_l = N(d, l) / n * P_l(X X^T)``
    approximates the orthogonal projector onto the degree-``l`` spherical
    harmonics sampled at the points (addition theorem: ``N(d, l) P_l(<x, x'>)
    = sum_m Y_lm(x) Y_lm(x')``). ``u^T G_l u`` is the degree-``l`` energy of a
    unit vector ``u``; it sums to about 1 over all degrees.

    Args:
        x: ``(n, d)`` points on the unit sphere.
        evecs: ``(n, m)`` unit vectors (e.g. the top Gram eigenvectors).
        lmax: largest degree.

    Returns:
        ``(lmax + 1, m)`` energies.
    """
    x = np.asarray(x, np.float64)
    n, d = x.shape
    gram = np.clip(x @ x.T, -1.0, 1.0)
    u = np.asarray(evecs, np.float64)
    out = np.empty((lmax + 1, u.shape[1]))
    p_prev, p = np.ones_like(gram), gram
    for l in range(lmax + 1):
        if l == 0:
            p_l = p_prev
        elif l == 1:
            p_l = p
        else:
            p_l = ((2 * (l - 1) + d - 2) * gram * p - (l - 1) * p_prev) / (l - 1 + d - 2)
            p_prev, p = p, p_l
        out[l] = harmonic_dimension(d, l) / n * np.sum(u * (p_l @ u), axis=0)
    return out


def group_by_degree(evals: np.ndarray, energies: np.ndarray, d: int
                    ) -> dict[int, tuple[float, int, float]]:
    """Gram eigenvalues grouped by spherical-harmonic degree.

    For each degree ``l`` the ``N(d, l)`` eigenvectors with the largest
    degree-``l`` energy are taken (so each degree gets its multiplicity even
    where eigenvalues of different degrees interleave); their eigenvalues are
    averaged.

    Args:
        evals: ``(m,)`` eigenvalues (of ``K / n``), with ``m`` at least the sum
            of the multiplicities (e.g. all ``n``).
        energies: ``(lmax + 1, m)`` from :func:`degree_energies`.
        d: the dimension (S^(d-1)).

    Returns:
        ``{degree: (mean eigenvalue, count, mean purity)}``, purity being the
        eigenvectors' mean energy in that degree (1 = pure harmonics).
    """
    out = {}
    for l in range(energies.shape[0]):
        count = min(harmonic_dimension(d, l), energies.shape[1])
        idx = np.argsort(energies[l])[::-1][:count]
        out[l] = (float(np.mean(evals[idx])), int(count),
                  float(np.mean(energies[l, idx])))
    return out


#: Eigenvalues at or below this fraction of the largest are quadrature noise
#: (about 1e-13 relative for :func:`funk_hecke_eigenvalues` at 4096 nodes),
#: not a decay: :func:`fit_decay` leaves them out.
EIGENVALUE_NOISE = 1e-11


def fit_decay(degrees: np.ndarray, evals: np.ndarray, floor: float = 0.0
              ) -> tuple[float, int]:
    """Least-squares slope of ``log lambda_l`` on ``log l`` (``lambda ~ l^slope``)
    and the number of eigenvalues it used.

    Eigenvalues ``<= floor`` are dropped (exact zeros, round-off). Some vanish
    exactly: a ReLU network without biases whose only nonlinearity acts
    once on each path (an FC net of one hidden layer, a ResNet of one block)
    has ``lambda_l = 0`` at every odd ``l >= 3`` (Bietti & Mairal 2019: in
    ``t kappa_0(t)`` and ``kappa_1(t)``, the arc-cosine kernels' terms, every
    odd power but ``t`` cancels), so its odd degrees have nothing to fit.

    Returns:
        ``(slope, points)``; ``(nan, points)`` with fewer than two usable
        eigenvalues at degrees ``>= 1``.
    """
    degrees = np.asarray(degrees, np.float64)
    evals = np.asarray(evals, np.float64)
    mask = (degrees > 0) & (evals > max(float(floor), 0.0))
    points = int(mask.sum())
    if points < 2:
        return float('nan'), points
    slope, _ = np.polyfit(np.log(degrees[mask]), np.log(evals[mask]), 1)
    return float(slope), points


def decay_exponent(degrees: np.ndarray, evals: np.ndarray,
                   floor: float = 0.0) -> float:
    """The slope of :func:`fit_decay`.

    Raises:
        ValueError: fewer than two eigenvalues above ``floor`` (and above 0)
            at degrees >= 1.
    """
    slope, points = fit_decay(degrees, evals, floor)
    if points < 2:
        raise ValueError('the decay fit needs at least two positive eigenvalues '
                         'at degrees >= 1')
    return slope
