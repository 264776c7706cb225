"""Experiment ``kernel_precision``: the critical dataset size of low-precision kernels.

Reproduces Lee et al. 2020 ("Finite Versus Infinite Neural Networks: an
Empirical Study"): "floating point precision limits kernel performance beyond
a critical dataset size", and their noise model of it
(:mod:`ntkexp.float_noise`). The NNGP and NTK are computed once in float64 on
the whole training set, and optionally in float32; lower precisions are
emulated by rounding the float64 entries (train x train and test x train) to
``experiment.mantissa_bits``. For nested, class-balanced training subsets of
growing size ``m`` every version is solved without Cholesky
(:class:`ntkexp.float_noise.EigenSolver`), so the float64 and the noisy kernels
see the same subsets and test images.

Rows, with columns ``kernel`` (nngp / ntk), ``mantissa_bits`` (52 = the
float64 reference, 23 = float32) and ``rounding`` (``computed``: the kernel
computed in that precision; ``rounded``: the float64 kernel's entries
rounded):

* per ``train_size`` and ``diag_reg``: ``accuracy`` (classification) and
  ``mse`` of the test predictions; ``solve_nonfinite`` (1) instead where a
  zero eigenvalue made them infinite;
* per ``train_size``: ``eigenvalue_min`` (the smallest eigenvalue over the
  mean diagonal) and ``negative_eigenvalues`` (how many: none for an exact
  kernel, about half of the noise-dominated ones for a noisy one);
* at the whole training set, per version: ``noise_sigma`` (the entries' RMS
  error over the mean diagonal, :func:`ntkexp.float_noise.relative_noise`)
  and ``critical_size`` (``m*`` of the noise model from that sigma and the
  float64 spectrum's fit; ``inf`` where the model has none);
* per kernel (float64): ``power_law_alpha`` and ``power_law_c`` (the fit of
  ``lambda_i / m ~ C i^-alpha`` over ``experiment.fit``), and ``eigenvalue``
  (``lambda_i / m`` at about 60 log-spaced indices ``index``) for the figure;
* ``kernel_seconds`` per computed precision (0 if cached).
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from ntkexp import float_noise
from ntkexp import host_memory
from ntkexp.data.preprocess import balanced_subset
from ntkexp.experiments.kernel_regression import add_scores, compute_kernels
from ntkexp.experiments.options import as_list
from ntkexp.records import RowWriter
from ntkexp.runner import ConfigError

log = logging.getLogger(__name__)

KERNELS = ('nngp', 'ntk')
REFERENCE_BITS = float_noise.MANTISSA_BITS['float64']
FLOAT32_BITS = float_noise.MANTISSA_BITS['float32']


# Float64 n_train x n_train arrays alive beside the kernels while a version is
# solved: its float64 train kernel and the subset taken of it, the symmetrised
# input of ``eigh``, LAPACK's copy of it and its workspace (2 n^2), the
# eigenvectors.
SOLVE_COPIES = 6


def precision_bytes(n_train: int, n_test: int, n_kernels: int, float32: bool) -> int:
    """Peak host bytes of a run (a lower bound, as
    :func:`ntkexp.host_memory.kernel_solve_bytes`): the float64 kernels, the
    float32 ones, one rounded version's, and :data:`SOLVE_COPIES`."""
    per_kernel = n_train * n_train + n_test * n_train
    kernels = n_kernels * per_kernel * (8 + (4 if float32 else 0)) + per_kernel * 8
    return int(kernels + SOLVE_COPIES * n_train * n_train * 8)


def check_host_memory(n_train: int, n_test: int, kernels: tuple[str, ...],
                      float32: bool, available: int | None = None) -> None:
    """Fails before any kernel is computed when a run cannot fit in the host
    memory left (:func:`ntkexp.host_memory.available_bytes`, or ``available``).

    Raises:
        HostMemoryError: one line with the bytes needed and available, the
            largest ``dataset.n_train`` that fits and the other ways out.
    """
    if available is None:
        available = host_memory.available_bytes()
    if available is None:
        return
    need = precision_bytes(n_train, n_test, len(kernels), float32)
    if need <= available:
        return
    low, high = 0, n_train          # the largest n_train that fits, by bisection
    while low < high:
        mid = (low + high + 1) // 2
        if precision_bytes(mid, n_test, len(kernels), float32) <= available:
            low = mid
        else:
            high = mid - 1
    ways = [f'dataset.n_train={low} or fewer (with n_test={n_test})']
    if float32:
        ways.append('experiment.float32=false (the rounded versions still run)')
    if len(kernels) > 1:
        ways.append(f'one kernel at a time (experiment.kernels=[{kernels[-1]}])')
    raise host_memory.HostMemoryError(
        f'experiment=kernel_precision on {n_train} train and {n_test} test inputs '
        f'needs about {need / host_memory.GIB:.1f} GiB of host memory '
        f'({len(kernels)} float64 kernel(s){" and their float32 computation" if float32 else ""}, '
        f'one rounded version and {SOLVE_COPIES} float64 {n_train} x {n_train} arrays for '
        f'the eigendecompositions); this machine has {available / host_memory.GIB:.1f} GiB '
        'available. To fix: ' + '; or '.join(ways))


def _fail(message: str) -> None:
    raise ConfigError(message)


def validate(cfg: DictConfig) -> None:
    """Checks the ``experiment`` options (called by :func:`ntkexp.runner.validate`,
    which checks ``experiment.kernels`` and ``diag_reg`` itself)."""
    exp = cfg.experiment
    if cfg.get('precision') != 'float64':
        _fail(f'experiment=kernel_precision compares every kernel with its float64 '
              f'computation, but precision={cfg.get("precision")}: use '
              'precision=float64 (experiment.float32=true adds the float32 kernels)')
    for bits in as_list(exp.get('mantissa_bits', []), [None]):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits < 52:
            _fail(f'experiment.mantissa_bits has {bits!r}: use integers from 1 to 51 '
                  '(float32 23, float16 10, bfloat16 7)')
    sizes = exp.get('train_sizes', None)
    if sizes is not None:
        for m in as_list(sizes, [None]):
            if isinstance(m, bool) or not isinstance(m, int) or m < 2:
                _fail(f'experiment.train_sizes has {m!r}: use integers >= 2 '
                      '(or null for sizes up to dataset.n_train)')
    fit = list(exp.get('fit', [0.05, 0.5]))
    if (len(fit) != 2 or not all(isinstance(f, (int, float)) for f in fit)
            or not 0 < fit[0] < fit[1] <= 1):
        _fail(f'experiment.fit={fit}: use [lo, hi] with 0 < lo < hi <= 1 (the '
              'fitted eigenvalue indices as fractions of the training set)')


def train_sizes(spec, n: int, count: int = 8, smallest: int = 100) -> list[int]:
    """The nested training-set sizes: ``spec``, or ``count`` geometric sizes
    from ``min(smallest, n)`` to ``n`` when ``spec`` is None."""
    if spec is None:
        start = min(smallest, n)
        sizes = np.unique(np.round(np.geomspace(start, n, count)).astype(int))
        return [int(m) for m in sizes]
    sizes = sorted({int(m) for m in as_list(spec, [None])})
    if sizes[-1] > n:
        raise ValueError(f'experiment.train_sizes has {sizes[-1]}, more than the '
                         f'{n} training points: use sizes <= {n} or raise '
                         'dataset.n_train')
    return sizes


def nested_subsets(labels: np.ndarray | None, sizes: list[int], seed: int
                   ) -> list[np.ndarray]:
    """Indices of nested training subsets, one per size.

    Class-balanced (:func:`ntkexp.data.preprocess.balanced_subset`: each
    class's seeded permutation's prefix, so each subset contains the smaller
    ones) when there are labels; else a seeded permutation's prefixes.
    """
    if labels is not None:
        return [balanced_subset(labels, m, seed, 'experiment.train_sizes')
                for m in sizes]
    order = np.random.default_rng(seed).permutation(max(sizes))
    return [np.sort(order[:m]) for m in sizes]


def spectrum_indices(m: int, count: int = 60) -> np.ndarray:
    """About ``count`` log-spaced 1-based eigenvalue indices from 1 to ``m``."""
    return np.unique(np.round(np.geomspace(1, m, count)).astype(int))


def versions(cfg: DictConfig, kernel: str, k_tt: dict, k_st: dict,
             k32: tuple[dict, dict] | None):
    """Yields ``(mantissa_bits, rounding, k_train_train, k_test_train)``: the
    float64 kernels, the float32-computed ones, then each rounding."""
    yield REFERENCE_BITS, 'computed', k_tt[kernel], k_st[kernel]
    if k32 is not None:
        yield FLOAT32_BITS, 'computed', k32[0][kernel], k32[1][kernel]
    for bits in sorted({int(b) for b in as_list(
            cfg.experiment.get('mantissa_bits', []), [None])}, reverse=True):
        yield (bits, 'rounded', float_noise.round_mantissa(k_tt[kernel], bits),
               float_noise.round_mantissa(k_st[kernel], bits))


def run(cfg: DictConfig, run_dir: Path, rows: RowWriter) -> pd.DataFrame:
    """Kernel regression on nested subsets with float64, float32 and rounded kernels.

    Args:
        cfg: the composed config; ``cfg.experiment`` has ``kernels``,
            ``train_sizes`` (null = 8 geometric sizes up to ``n_train``),
            ``float32`` (bool), ``mantissa_bits`` (list), ``diag_reg`` (list;
            0 = none) and ``fit`` (``[lo, hi]``).
        run_dir: the run directory.
        rows: the run's row writer.

    Returns:
        The accuracy (or mse) at the first ``diag_reg`` per kernel, version
        and training-set size.
    """
    exp = cfg.experiment
    get = tuple(str(k) for k in as_list(exp.get('kernels', list(KERNELS)), [None]))
    diag_regs = [float(d) for d in as_list(exp.get('diag_reg', [0.0]), [None])]
    fit = tuple(float(f) for f in exp.get('fit', [0.05, 0.5]))
    data = instantiate(cfg.dataset)
    rows.fill_sizes(data)  # null n_train / n_test: the sizes loaded
    x_train = np.asarray(data.x_train, np.float64)
    x_test = np.asarray(data.x_test, np.float64)
    y_train = np.asarray(data.y_train, np.float64)
    y_test = np.asarray(data.y_test, np.float64)
    labels_train = getattr(data, 'labels_train', None)
    labels_test = getattr(data, 'labels_test', None)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=y_train.shape[1])
    n = len(x_train)
    sizes = train_sizes(exp.get('train_sizes', None), n)
    subsets = nested_subsets(labels_train, sizes, int(cfg.get('seed', 0)))

    float32 = bool(exp.get('float32', True))
    check_host_memory(n, len(x_test), get, float32)
    k_tt, k_st, seconds = compute_kernels(cfg, kernel_fn, x_train, x_test, get,
                                          run_dir=run_dir)
    rows.add('kernel_seconds', seconds, mantissa_bits=REFERENCE_BITS,
             rounding='computed', n_train=n, n_test=len(x_test))
    k32 = None
    if float32:
        with jax.enable_x64(False):
            k32_tt, k32_st, seconds = compute_kernels(
                cfg, kernel_fn, x_train.astype(np.float32),
                x_test.astype(np.float32), get, run_dir=run_dir)
        k32 = (k32_tt, k32_st)
        rows.add('kernel_seconds', seconds, mantissa_bits=FLOAT32_BITS,
                 rounding='computed', n_train=n, n_test=len(x_test))

    summary = []
    for kernel in get:
        reference = np.asarray(k_tt[kernel], np.float64)
        scale = float_noise.mean_diagonal(reference)
        spectrum = np.sort(np.linalg.eigvalsh(reference / scale))[::-1]
        alpha, c = float_noise.fit_power_law(spectrum, fit)
        rows.add('power_law_alpha', alpha, kernel=kernel, train_size=n)
        rows.add('power_law_c', c, kernel=kernel, train_size=n)
        for index in spectrum_indices(n):
            rows.add('eigenvalue', spectrum[index - 1] / n, kernel=kernel,
                     train_size=n, index=int(index))
        log.info('%s: float64 spectrum lambda_i/m ~ %.3g i^-%.3f (fit over %s)',
                 kernel, c, alpha, list(fit))
        for bits, rounding, v_tt, v_st in versions(cfg, kernel, k_tt, k_st, k32):
            version = dict(kernel=kernel, mantissa_bits=bits, rounding=rounding)
            sigma = float_noise.relative_noise(v_tt, reference)
            m_star = float_noise.critical_size(alpha, c, sigma)
            rows.add('noise_sigma', sigma, train_size=n, **version)
            rows.add('critical_size', m_star, train_size=n, **version)
            log.info('%s, %d bits %s: sigma %.3g, critical size %.4g', kernel,
                     bits, rounding, sigma, m_star)
            v_tt = np.asarray(v_tt, np.float64)
            v_st = np.asarray(v_st, np.float64)
            for m, idx in zip(sizes, subsets):
                solver = float_noise.EigenSolver(v_tt[np.ix_(idx, idx)], y_train[idx])
                rows.add('eigenvalue_min', solver.min_eigenvalue(), train_size=m,
                         **version)
                rows.add('negative_eigenvalues', solver.negative_count(),
                         train_size=m, **version)
                for diag_reg in diag_regs:
                    params = dict(version, train_size=m, diag_reg=diag_reg)
                    pred = solver.predict(v_st[:, idx], diag_reg)
                    if not np.all(np.isfinite(pred)):
                        rows.add('solve_nonfinite', 1, **params)
                        continue
                    entry = add_scores(rows, pred, params, y_test, labels_test)
                    if diag_reg == diag_regs[0]:
                        summary.append(entry)
    table = pd.DataFrame(summary)
    if not table.empty:
        score = 'accuracy' if 'accuracy' in table else 'mse'
        table = table.pivot_table(index=['kernel', 'mantissa_bits', 'rounding'],
                                  columns='train_size', values=score)
    return table
