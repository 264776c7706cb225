"""Experiment ``kernel_regression``: infinite-width NNGP and NTK predictions.

Reproduces the kernel side of Lee et al. 2020 ("Finite Versus Infinite Neural
Networks: an Empirical Study", Table 1 / Figs. 1, 5, 6: NNGP vs NTK, diagonal
regularisation, ZCA, float64) and Arora et al. 2019/2020 (CNTK; small-data
CIFAR-10). The train-train and test-train kernels are computed once by the
block engine (:mod:`ntkexp.kernels`, cached on disk) and reused for every
kernel x ``diag_reg`` x ``t`` combination; solves are float64
(:mod:`ntkexp.solve`).

Rows (metric per ``kernel`` in {nngp, ntk}, ``diag_reg``, ``t``; ``t = inf`` is
the fully trained / posterior-mean prediction):

* ``accuracy`` (classification), ``mse`` (mean over test points and outputs);
* with a validation split (``dataset.n_valid``), ``val_accuracy`` and
  ``val_mse`` of the same predictor on it: the kernel tables of
  ``ntkexp plot`` then pick ``diag_reg`` on them instead of on the test
  points (Lee et al. 2020 tune it on a validation set); the validation
  inputs ride with the test inputs through the test-train kernel and every
  solve, at the cost of ``n_valid`` more rows;
* ``train_mse`` at finite ``t`` (none at ``t = inf``, where it is only the
  regulariser's residual);
* rows at a finite ``t`` also carry ``t_as_diag_reg = y.size ln 2 / (t
  mean(diag K))``: the ``diag_reg`` whose ridge filter ``l / (l + eps
  mean(diag K))`` halves at the same kernel eigenvalue ``l`` as the gradient
  flow's ``1 - exp(-l t / y.size)`` (Lee et al. 2020, Sec. 3: diagonal
  regularisation acts like early stopping);
* ``variance`` (mean predictive variance over test points) when
  ``experiment.variance=true``;
* with ``experiment.kernel_stats=true``, per kernel, the train kernel's
  geometry: ``kernel_cos_mean`` and ``kernel_cos_std``, the mean and spread
  of its off-diagonal cosines ``K_ij / sqrt(K_ii K_jj)``
  (:func:`ntkexp.spectrum.cosine_offdiagonal`; a spread falling to zero is
  the depth degeneracy of Huang et al. 2020), and ``kernel_alignment``, its
  centred alignment with the training targets
  (:func:`ntkexp.spectrum.centered_alignment`);
* ``kernel_seconds``: wall time of the kernel computation (0 if cached).

With ``experiment.augment.members=M`` (data augmentation by ensembling kernel
predictors, Lee et al. 2020; :mod:`ntkexp.augment`), per kernel and
``diag_reg`` at ``t = inf``, with columns ``augment`` (e.g. ``flip``,
``flip+crop4``) and ``members`` = k for k = 1..M:

* ``augment_accuracy``, ``augment_mse``: the mean prediction of the first k
  members, each a kernel predictor trained on the training images with
  random transforms (member 0 alone at k = 1);
* with ``experiment.augment.union=true`` (flips only), ``augment_union_accuracy``
  and ``augment_union_mse``: one predictor on all ``2N`` images ``[x;
  flip(x)]``, the augmented set the ensemble approximates;
* ``augment_kernel_seconds``: wall time of the members' kernels.

Flips alone compute one kernel on ``[x; flip(x)]`` (four times the train
kernel, twice the test kernel); the plain kernels and every member's are
sub-matrices of it. With shifts each member computes its own kernels.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ntkexp import augment
from ntkexp import host_memory
from ntkexp import kernels
from ntkexp import solve
from ntkexp import spectrum
from ntkexp.experiments.options import as_list, time_value
from ntkexp.records import RowWriter


def validate(cfg: DictConfig) -> None:
    """A typed ``seed`` must reach the data: the kernel predictors have no
    random initialisation, and the training subset is drawn by
    ``dataset.seed``, so ``-m seed=0,1,2`` alone repeated one run (``ntkexp
    collect`` then counted three seeds with a std of 0).

    Raises:
        ConfigError: ``seed`` typed while ``dataset.seed`` does not take it.
    """
    from ntkexp import runner  # pylint: disable=g-import-not-at-top
    given = runner.command_line_keys()
    if ('seed' not in given or cfg.get('dataset') is None
            or cfg.experiment.get('run') != f'{__name__}.run'):
        return  # experiment.run=mymodule.run may well use the seed
    data_seed = OmegaConf.to_container(cfg.dataset, resolve=False).get('seed', 0)
    runner.require(
        isinstance(data_seed, str) and '${seed}' in data_seed,
        f"seed={cfg.get('seed')} would be ignored: experiment={cfg.experiment.name} "
        'has no random initialisation (its kernel predictors are deterministic '
        f"given the data), and dataset.seed={cfg.dataset.get('seed', 0)} draws the "
        'training subset; ' + (
            f"drop seed={cfg.get('seed')}" if 'dataset.seed' in given
            else f"type dataset.seed={cfg.get('seed')} instead")
        + ", or add 'dataset.seed=${seed}' to draw it by seed")


def model_id(cfg: DictConfig) -> str:
    """The architecture's identity for the kernel cache: its resolved config."""
    return json.dumps(OmegaConf.to_container(cfg.model, resolve=True),
                      sort_keys=True)


def make_engine(cfg: DictConfig, kernel_fn, get: tuple[str, ...]) -> kernels.KernelEngine:
    """The block engine configured by ``cfg.kernel`` and ``cfg.paths.cache``."""
    kcfg = cfg.get('kernel', {})
    cache_dir = None
    if kcfg.get('cache', True) and cfg.get('paths', {}).get('cache'):
        cache_dir = Path(cfg.paths.cache) / 'kernels'
    return kernels.KernelEngine(
        kernel_fn=kernel_fn,
        model_id=model_id(cfg),
        get=get,
        memory_gb=float(kcfg.get('memory_gb', 4.0)),
        block_size=kcfg.get('block_size', None),
        block_seconds=kcfg.get('block_seconds', 60.0),
        cache_dir=cache_dir,
        progress=bool(kcfg.get('progress', True)),
    )


def compute_kernels(cfg: DictConfig, kernel_fn, x_train: np.ndarray,
                    x_test: np.ndarray, get: tuple[str, ...],
                    run_dir: Path | None = None, finite_t: bool = False):
    """Train-train and test-train kernels, through submitit jobs if configured.

    With ``kernel.jobs > 1`` the missing blocks are computed by submitit jobs
    (:mod:`ntkexp.distributed`) whose logs go to ``<run_dir>/kernel_jobs``.
    First checks that the kernels and a solve on them (at a finite ``t``
    when ``finite_t``) fit in host memory
    (:func:`ntkexp.host_memory.check_kernel_solve`).

    Raises:
        HostMemoryError: they do not; before any block is computed.

    Returns:
        ``(k_train_train, k_test_train, seconds)``, each kernel a dict by ``get``.
    """
    host_memory.check_kernel_solve(len(x_train), len(x_test), tuple(get),
                                   np.dtype(x_train.dtype).itemsize, finite_t)
    engine = make_engine(cfg, kernel_fn, get)
    start = time.time()
    jobs = int(cfg.get('kernel', {}).get('jobs', 1))
    if jobs > 1:
        from ntkexp import distributed  # pylint: disable=g-import-not-at-top
        k_tt, k_st = distributed.compute_kernels(cfg, engine, x_train, x_test,
                                                 run_dir=run_dir)
    else:
        k_tt = engine(x_train, None, desc='train x train')
        k_st = engine(x_test, x_train, desc='test x train')
    return k_tt, k_st, time.time() - start


def t_as_diag_reg(t: float, y_size: int, mean_diag: float) -> float:
    """The ``diag_reg`` that regularises like gradient flow stopped at ``t``.

    Kernel regression with ``K + eps mean(diag K) I`` keeps the fraction
    ``l / (l + eps mean(diag K))`` of the target along a kernel eigenvector
    of eigenvalue ``l``; gradient flow for a time ``t`` (:func:`ntkexp.solve.
    predict_t`) keeps ``1 - exp(-l t / y.size)``. Both filters pass large
    eigenvalues and cut small ones, and they halve at the same ``l`` when
    ``eps = y.size ln 2 / (t mean(diag K))`` (Lee et al. 2020, Sec. 3:
    diagonal regularisation acts like early stopping).
    """
    return y_size * math.log(2.0) / (t * mean_diag)


def add_kernel_stats(rows: RowWriter, k_train: dict, y_train: np.ndarray,
                     kernels_: tuple[str, ...]) -> None:
    """Rows ``kernel_cos_mean``, ``kernel_cos_std`` and ``kernel_alignment``
    of each train kernel (see the module docstring)."""
    for kernel in kernels_:
        cos_mean, cos_std = spectrum.cosine_offdiagonal(k_train[kernel])
        rows.add('kernel_cos_mean', cos_mean, kernel=kernel)
        rows.add('kernel_cos_std', cos_std, kernel=kernel)
        rows.add('kernel_alignment',
                 spectrum.centered_alignment(k_train[kernel], y_train),
                 kernel=kernel)


def add_scores(rows: RowWriter, pred: np.ndarray, params: dict, y_test: np.ndarray,
               labels_test, prefix: str = '') -> dict:
    """Rows ``<prefix>accuracy`` (classification) and ``<prefix>mse`` of one
    prediction; returns them as a summary entry with ``params``."""
    entry = dict(params)
    if labels_test is not None:
        entry['accuracy'] = solve.accuracy(pred, labels_test)
        rows.add(f'{prefix}accuracy', entry['accuracy'], **params)
    entry['mse'] = solve.mse(pred, y_test)
    rows.add(f'{prefix}mse', entry['mse'], **params)
    return entry


def member_kernels(cfg: DictConfig, kernel_fn, aug: augment.Augmentation,
                   x_train: np.ndarray, x_test: np.ndarray, get: tuple[str, ...],
                   pool_kernels: tuple[dict, dict] | None, run_dir: Path | None):
    """Each ensemble member's train-train and test-train kernels, in order.

    Args:
        pool_kernels: the kernels of the flip pool ``[x; flip(x)]`` when the
            members are flips only (then each member's kernels are index
            selections of them); None to compute each member's own.

    Yields:
        ``(k_train_train, k_test_train, seconds)`` per member.
    """
    for member in range(aug.members):
        transforms = augment.draw(aug, len(x_train), member)
        if pool_kernels is not None:
            idx = augment.pool_indices(transforms)
            k_pool_tt, k_pool_st = pool_kernels
            yield ({k: v[np.ix_(idx, idx)] for k, v in k_pool_tt.items()},
                   {k: v[:, idx] for k, v in k_pool_st.items()}, 0.0)
        else:
            yield compute_kernels(cfg, kernel_fn, augment.apply(x_train, transforms),
                                  x_test, get, run_dir=run_dir)


def add_augmented_rows(rows: RowWriter, summary: list, aug: augment.Augmentation,
                       members, pool_kernels, get: tuple[str, ...], diag_regs: list,
                       y_train: np.ndarray, y_test: np.ndarray, labels_test) -> None:
    """Rows of the augmentation ensemble and of the union (module docstring).

    Args:
        members: :func:`member_kernels`' output.
        pool_kernels: the flip pool's ``(train-train, test-train)`` kernels,
            for ``aug.union``; else None.
    """
    def add(prefix, pred, params, **shown):  # shown: in the printed summary only
        summary.append(dict(add_scores(rows, pred, params, y_test, labels_test,
                                       prefix), **shown))

    total = {}
    seconds = 0.0
    for m, (k_tt, k_st, member_seconds) in enumerate(members):
        seconds += member_seconds
        for kernel in get:
            for diag_reg in diag_regs:
                pred = solve.predict_inf(k_tt[kernel], k_st[kernel], y_train,
                                         diag_reg, kernel)
                key = (kernel, diag_reg)
                total[key] = total.get(key, 0.0) + pred
                add('augment_', total[key] / (m + 1),
                    dict(kernel=kernel, diag_reg=diag_reg, t=math.inf,
                         augment=aug.label, members=m + 1))
    if aug.members:
        rows.add('augment_kernel_seconds', seconds, augment=aug.label,
                 members=aug.members)
    if aug.union:
        k_pool_tt, k_pool_st = pool_kernels
        y_pool = np.concatenate([y_train, y_train])
        for kernel in get:
            for diag_reg in diag_regs:
                pred = solve.predict_inf(k_pool_tt[kernel], k_pool_st[kernel],
                                         y_pool, diag_reg, kernel)
                add('augment_union_', pred,
                    dict(kernel=kernel, diag_reg=diag_reg, t=math.inf,
                         augment=aug.label), members='union')


def _run_kernels(cfg: DictConfig, kernel_fn, aug: augment.Augmentation,
                 x_train: np.ndarray, x_test: np.ndarray, n_test: int,
                 need: tuple[str, ...], run_dir: Path, finite_t: bool):
    """The train-train and test-train kernels of a run (the test rows include
    the validation points after the first ``n_test``), and with flips only
    the kernels of ``[x; flip(x)]``, whose first block the plain kernels are.

    Returns:
        ``(k_tt, k_st, seconds, pool_kernels)``: ``pool_kernels`` is the
        pooled train-train and test-train kernels (test points only), or None
        unless ``experiment.augment`` flips without crops.
    """
    if not (aug.enabled and aug.flips_only):
        k_tt, k_st, seconds = compute_kernels(
            cfg, kernel_fn, x_train, x_test, need, run_dir=run_dir,
            finite_t=finite_t)
        return k_tt, k_st, seconds, None
    try:
        pool_tt, pool_st, seconds = compute_kernels(
            cfg, kernel_fn, augment.pool(x_train), x_test, need, run_dir=run_dir,
            finite_t=finite_t)
    except host_memory.HostMemoryError as err:
        raise host_memory.HostMemoryError(
            f'{err} [experiment.augment: flips compute the kernels of '
            f'[x; flip(x)], so the train inputs above are twice '
            f'dataset.n_train={len(x_train)}: halve the n_train it names, or '
            'set experiment.augment.members=0 experiment.augment.union=false]'
        ) from None
    n = len(x_train)
    k_tt = {k: np.ascontiguousarray(v[:n, :n]) for k, v in pool_tt.items()}
    k_st = {k: np.ascontiguousarray(v[:, :n]) for k, v in pool_st.items()}
    pool_kernels = (pool_tt, {k: v[:n_test] for k, v in pool_st.items()})
    return k_tt, k_st, seconds, pool_kernels


def _variance(kernel: str, k_tt: dict, k_st: dict, k_test_diag: np.ndarray,
              diag_reg: float, n_test: int) -> np.ndarray:
    """The posterior variance at each test point of the ``kernel`` predictor
    at ``t = inf`` (:func:`ntkexp.solve.nngp_variance`, ``ntk_variance``)."""
    k_nngp = k_st['nngp'][:n_test]
    if kernel == 'nngp':
        return solve.nngp_variance(k_tt['nngp'], k_nngp, k_test_diag, diag_reg)
    return solve.ntk_variance(k_tt['ntk'], k_st['ntk'][:n_test], k_tt['nngp'],
                              k_nngp, k_test_diag, diag_reg)


def _kernel_rows(rows: RowWriter, kernel: str, k_tt: dict, k_st: dict, data,
                 y_train: np.ndarray, y_test: np.ndarray, n_test: int,
                 diag_regs: list[float], times: list[float],
                 k_test_diag) -> list[dict]:
    """Scores of one kernel's predictor at every ``diag_reg`` and ``t``
    (``t = inf``: the solve; finite ``t``: the gradient flow, one
    eigendecomposition per ``diag_reg``); returns the summary entries."""
    entries = []
    mean_diag = float(np.mean(np.diag(k_tt[kernel])))
    for diag_reg in diag_regs:
        flow = None  # one eigendecomposition for every finite t
        for t in times:
            if math.isinf(t):
                pred = solve.predict_inf(k_tt[kernel], k_st[kernel],
                                         y_train, diag_reg, kernel)
            else:
                flow = flow or solve.GradientFlow(k_tt[kernel], y_train,
                                                  diag_reg, kernel)
                pred = flow.predict(k_st[kernel], t)
            params = dict(kernel=kernel, diag_reg=diag_reg, t=t)
            if not math.isinf(t):
                params['t_as_diag_reg'] = t_as_diag_reg(t, y_train.size, mean_diag)
            pred, pred_valid = pred[:n_test], pred[n_test:]
            entry = add_scores(rows, pred, params, y_test, data.labels_test)
            if data.n_valid:
                scores = add_scores(rows, pred_valid, params, data.y_valid,
                                    data.labels_valid, prefix='val_')
                entry.update({f'val_{k}': scores[k] for k in ('accuracy', 'mse')
                              if k in scores})
            if not math.isinf(t):
                train_pred = flow.predict(k_tt[kernel], t)
                rows.add('train_mse', solve.mse(train_pred, y_train), **params)
            if k_test_diag is not None and math.isinf(t):
                entry['variance'] = float(np.mean(_variance(
                    kernel, k_tt, k_st, k_test_diag, diag_reg, n_test)))
                rows.add('variance', entry['variance'], **params)
            entries.append(entry)
    return entries


def run(cfg: DictConfig, run_dir: Path, rows: RowWriter) -> pd.DataFrame:
    """Runs kernel regression for every kernel, ``diag_reg`` and ``t``.

    Args:
        cfg: the composed config; ``cfg.experiment`` has ``kernels`` (list of
            'nngp' / 'ntk'), ``diag_reg`` (float or list), ``t`` (null = inf,
            or list), ``variance`` (bool), ``kernel_stats`` (bool), ``augment``
            (:mod:`ntkexp.augment` options; members 0 = off).
        run_dir: the run directory (kernel job logs go to
            ``<run_dir>/kernel_jobs`` with ``kernel.jobs > 1``).
        rows: the run's row writer.

    Returns:
        A summary table (kernel x diag_reg x t -> accuracy, mse).
    """
    exp = cfg.experiment
    aug = augment.from_config(exp.get('augment'))
    dtype = np.float64 if cfg.get('precision') == 'float64' else np.float32
    data = instantiate(cfg.dataset)
    rows.fill_sizes(data)  # null n_train / n_test: the sizes loaded
    x_train = np.asarray(data.x_train, dtype)
    x_test = np.asarray(data.x_test, dtype)
    n_test = len(x_test)
    if data.n_valid:  # scored beside the test points: one kernel, one solve
        x_test = np.concatenate([x_test, np.asarray(data.x_valid, dtype)])
    y_train = np.asarray(data.y_train, np.float64)
    y_test = np.asarray(data.y_test, np.float64)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=y_train.shape[1])

    get = tuple(as_list(exp.get('kernels', ['nngp', 'ntk']), [None]))
    unknown = sorted(set(get) - {'nngp', 'ntk'})
    if unknown:
        raise ValueError(f'experiment.kernels has {unknown}; choose from '
                         "['nngp', 'ntk']")
    variance = bool(exp.get('variance', False))
    need = tuple(sorted(set(get) | ({'nngp'} if variance else set())))
    times = [time_value(t) for t in as_list(exp.get('t', None), [None])]
    diag_regs = [float(d) for d in as_list(exp.get('diag_reg', 1e-4), [None])]
    if aug.enabled:
        augment.check_images(x_train)
    finite_t = any(not math.isinf(t) for t in times)
    k_tt, k_st, seconds, pool_kernels = _run_kernels(
        cfg, kernel_fn, aug, x_train, x_test, n_test, need, run_dir, finite_t)
    rows.add('kernel_seconds', seconds, n_train=len(x_train), n_test=n_test,
             **({'n_valid': data.n_valid} if data.n_valid else {}))
    x_test = x_test[:n_test]

    k_test_diag = None
    if variance:
        # Only k(x, x) of each test point: n_test entries, not n_test^2.
        engine = make_engine(cfg, kernel_fn, ('nngp',))
        k_test_diag = np.asarray(
            engine.diagonal(x_test, desc='test diagonal')['nngp'], np.float64)

    if exp.get('kernel_stats', False):
        add_kernel_stats(rows, k_tt, y_train, get)

    summary = []
    for kernel in get:
        summary += _kernel_rows(rows, kernel, k_tt, k_st, data, y_train, y_test, n_test,
                                diag_regs, times, k_test_diag)
    if aug.enabled:
        add_augmented_rows(
            rows, summary, aug,
            member_kernels(cfg, kernel_fn, aug, x_train, x_test, get, pool_kernels,
                           run_dir),
            pool_kernels, get, diag_regs, y_train, y_test, data.labels_test)
    return pd.DataFrame(summary)
