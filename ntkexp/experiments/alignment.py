"""Experiment ``alignment``: the NTK's spectrum along training and on spheres.

Three studies, one module (each config's ``experiment.run`` names one):

* :func:`run` -- Kopitkov & Indelman 2019 ("Neural Spectrum Alignment:
  Empirical Study"). A finite network (any architecture) is trained by
  full-batch GD / SGD / momentum with a constant, step-decay or cosine learning
  rate. At logged steps the empirical NTK Gram matrix ``K_t`` on the training
  set (and optionally on the test set) is eigen-decomposed; rows hold its top
  eigenvalues, the kernel-target alignment ``A(K_t, Y)`` and the energy
  fractions ``E_k(v)`` of the target, the network output and the residual for a
  grid of ``k`` (:mod:`ntkexp.spectrum`). The infinite-width NTK of the same
  architecture (``kernel_fn``) gives the ``t = 0`` / width = infinity reference.
* :func:`run_principal_component` -- Jacot et al. 2018 ("Neural Tangent
  Kernel"), Sec. 6 and Fig. 3: the kernel principal components of ``N``
  inputs (``eigh`` of the infinite-width NTK Gram matrix; Jacot used power
  iteration on a width-10^4 network's NTK), the target ``f* = f_0 + a f^(i)``
  (``a = 0.5``, ``i = 2``), and the decomposition ``f_t - f* = g_t f^(i) +
  h_t`` during training: in the infinite-width limit ``|g_t| = a
  exp(-lambda_i t)`` and ``h_t = 0``.
* :func:`run_sphere` -- Belfer et al. 2021 ("Spectral Analysis of the Neural
  Tangent Kernel for Deep Residual Networks"); Bietti & Mairal 2019: the
  Mercer eigenvalues of the infinite-width NTK on the uniform sphere
  S^(d-1) for each spherical-harmonic degree ``l`` (Funk-Hecke quadrature of
  the analytic kernel, :func:`ntkexp.spectrum.funk_hecke_eigenvalues`), the
  fitted decay exponent (``lambda_l ~ l^(-d)`` for FC and residual ReLU NTKs),
  the kernel's shape ``k(t) / k(1)`` and the effect of depth and of the
  residual scale ``alpha``; checked against the Gram matrix of uniform points
  whose eigenvectors are assigned to degrees.

Conventions (documented here once):

* Kernels are the NTK traced over the outputs: ``nt.empirical_ntk_fn(...,
  trace_axes=(-1,))`` *averages* the diagonal output blocks, so the empirical
  ``K`` is comparable with the infinite-width ``kernel_fn(x, x, 'ntk')``
  (computed in ``precision``). For ``c`` outputs the alignment compares ``K``
  with ``Y Y^T`` (:func:`ntkexp.spectrum.kernel_target_alignment`) and
  ``E_k(V)`` sums the energy of all output columns.
* Training uses :mod:`ntkexp.training` (the loss ``0.5 mean((f - y)^2)`` of
  ``nt.predict``). The learning rate is ``lr`` or ``lr_fraction`` times the
  maximal stable rate ``2 y.size / lambda_max(K_0)`` of the initial empirical
  NTK; ``time`` on the rows is ``t = sum_s lr_s`` (the gradient-flow time).
* Eigenvalues on the rows are those of the Gram matrix ``K`` (``kernel_fn``
  units); the principal-component study uses ``K / N`` (Jacot's eigenvalues
  w.r.t. the empirical input distribution); the sphere study uses the uniform
  probability measure (so Gram eigenvalues are those of ``K / n``).

Rows of :func:`run` (``setup``, ``split`` in {train, test}, ``kernel`` in
{empirical, infinite}, ``step``, ``time``, ``lr``):
``eigenvalue`` (``rank``), ``trace``, ``alignment``, ``alignment_centered``
(of ``H K H`` and ``H Y``, ``H = I - 11^T / n``), ``energy`` (``vector`` in
{target, output, residual}, ``rank`` = k), ``loss``, ``accuracy``,
``ntk_change`` (``||K_t - K_0||_F / ||K_0||_F``), ``ntk_distance_infinite``
(``||K_t - K_inf||_F / ||K_inf||_F``), ``max_lr``, ``lr_used``,
``ntk_implementation``, ``ntk_seconds``, ``ntk_block_size`` (rows per block of
the training-set kernel) and, with ``experiment.ntk_block_size=auto``,
``ntk_block_bytes`` (its compiled program's bytes, at most ``kernel.memory_gb``;
:mod:`ntkexp.empirical_ntk`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time as time_mod
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ntkexp import ntk_drift
from ntkexp import runner
from ntkexp import solve
from ntkexp import spectrum
from ntkexp import training
from ntkexp.empirical_ntk import AUTO, EmpiricalNTK
from ntkexp.experiments.options import as_list
from ntkexp.records import RowWriter
from ntkexp.runner import ConfigError, choice_name, require, target_name

log = logging.getLogger(__name__)

SCHEDULES = ('constant', 'step', 'cosine')
# nt.NtkImplementation by name, and ntkexp's structured derivatives (4,
# ntkexp.structured_ntk); 'auto' tries ntkexp's first on networks with
# convolutions (faster there), neural-tangents' first otherwise, keeps the
# first that works, else Jacobian contraction (1).
IMPLEMENTATIONS = {'auto': 0, **ntk_drift.IMPLEMENTATIONS}
DTYPES = ('float32', 'float64')


# --- configuration helpers --------------------------------------------------


def _implementation_code(value: Any) -> int:
    try:
        return ntk_drift.implementation_code(value, IMPLEMENTATIONS)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def validate(cfg: DictConfig) -> None:
    """Checks the ``experiment`` options of the three studies.

    Raises:
        ConfigError: one line naming the bad value and the valid ones.
    """
    exp = cfg.experiment
    _check_counts(exp)
    _check_training(exp)
    _check_logged_spectra(exp)
    _check_sphere(cfg)


def _check_counts(exp: DictConfig) -> None:
    """The counts and sizes of the studies (integers, most >= 1)."""
    def positive_int(key: str, minimum: int = 1) -> None:
        if key in exp and exp[key] is not None:
            value = exp[key]
            require(isinstance(value, int) and not isinstance(value, bool)
                    and value >= minimum,
                    f'experiment.{key}={value!r} must be an integer >= {minimum}')

    for key in ('top_k', 'n_inits', 'component', 'lmax', 'n_quad', 'd'):
        positive_int(key, 2 if key == 'd' else 1)
    for key in ('steps', 'gram_points', 'shape_points', 'gram_lmax'):
        positive_int(key, 0)


def _check_training(exp: DictConfig) -> None:
    """Optimiser, loss, learning rate and its schedule, the empirical NTK's
    implementation and blocks, and the precisions."""
    if 'schedule' in exp:
        require(exp.schedule in SCHEDULES,
                f'experiment.schedule={exp.schedule!r} is invalid; use one of '
                f"{', '.join(SCHEDULES)}")
    if 'optimizer' in exp:
        require(exp.optimizer in training.OPTIMIZERS,
                f'experiment.optimizer={exp.optimizer!r} is invalid; use one of '
                f"{', '.join(training.OPTIMIZERS)}")
    if 'loss' in exp:
        require(exp.loss in training.LOSSES,
                f'experiment.loss={exp.loss!r} is invalid; use one of '
                f"{', '.join(training.LOSSES)}")
    if 'ntk_implementation' in exp:
        _implementation_code(exp.ntk_implementation)
    block = exp.get('ntk_block_size', None)
    require(block is None or block == AUTO or (
        isinstance(block, int) and not isinstance(block, bool) and block >= 1),
            f'experiment.ntk_block_size={block!r} is invalid; use {AUTO} (the '
            'largest block that fits kernel.memory_gb), an integer >= 1 or null '
            '(one block)')
    if exp.get('precision', None) is not None:
        require(exp.precision in DTYPES,
                f'experiment.precision={exp.precision!r} is invalid; use float32, '
                'float64 or null (= the root precision)')
    if exp.get('train_dtype', None) is not None:
        require(exp.train_dtype in DTYPES,
                f'experiment.train_dtype={exp.train_dtype!r} is invalid; use '
                'float32, float64 or null (= precision)')
    lr, fraction = exp.get('lr', None), exp.get('lr_fraction', None)
    if 'lr' in exp or 'lr_fraction' in exp:
        require(lr is not None or fraction is not None,
                'set experiment.lr (e.g. 1.0) or experiment.lr_fraction (e.g. 0.5)')
        for key, value in (('lr', lr), ('lr_fraction', fraction)):
            require(value is None or float(value) > 0,
                    f'experiment.{key}={value} must be > 0')
    for f in as_list(exp.get('decay_at', None)):
        require(0 < float(f) < 1, f'experiment.decay_at has {f}; use fractions '
                'of the training steps in (0, 1), e.g. [0.5, 0.75]')
    if exp.get('decay_factor', None) is not None:
        require(0 < float(exp.decay_factor) <= 1,
                f'experiment.decay_factor={exp.decay_factor} must be in (0, 1]')


def _check_logged_spectra(exp: DictConfig) -> None:
    """What is logged of the spectrum: the ``E_k`` grid and the steps."""
    for k in as_list(exp.get('energy_k', None)):
        require(isinstance(k, int) and k >= 1,
                f'experiment.energy_k has {k!r}; use positive integers')
    spec = exp.get('log_steps', None)
    if spec is not None and not (OmegaConf.is_list(spec) or isinstance(spec, list)):
        require(isinstance(spec, int) and spec >= 2,
                f'experiment.log_steps={spec!r}: give a count >= 2 or a list of steps')
    if exp.get('log_spacing', None) is not None:
        require(exp.log_spacing in ('log', 'linear'),
                f'experiment.log_spacing={exp.log_spacing!r}: use log or linear')


def _check_sphere(cfg: DictConfig) -> None:
    """Study 3's Funk-Hecke options and model (Belfer et al. 2021)."""
    exp = cfg.experiment
    fit = exp.get('fit_degrees', None)
    if fit is not None:
        fit = as_list(fit)
        require(len(fit) == 2 and 1 <= int(fit[0]) < int(fit[1]),
                f'experiment.fit_degrees={fit}: give [l_min, l_max] with '
                '1 <= l_min < l_max')
        require(int(fit[1]) <= int(exp.get('lmax', fit[1])),
                f'experiment.fit_degrees={fit} exceeds experiment.lmax='
                f"{exp.get('lmax')}")
    for a in as_list(exp.get('alphas', None)):
        require(float(a) >= 0, f'experiment.alphas has {a}; use values >= 0')
    for depth in as_list(exp.get('depths', None)):
        require(isinstance(depth, int) and depth >= 0,
                f'experiment.depths has {depth!r}; use integers >= 0')
    if str(exp.get('run', '')).endswith('.run_sphere') and cfg.get('model'):
        # Funk-Hecke needs a dot-product kernel k(<x, x'>) of vectors on the
        # sphere; experiment.depths replaces model.depth.
        target = target_name(cfg.model)
        require(target == 'fc' or (target == 'resnet' and
                                   cfg.model.get('layout', 'flat') == 'flat'),
                f"experiment={exp.name} computes the spectra of FC and flat "
                'ResNet kernels on the sphere (dot-product kernels), not of '
                f"model={choice_name('model', cfg.model)}"
                + (' model.layout=image' if target == 'resnet' else '')
                + '; use model=fc or model=resnet (layout=flat), with '
                'experiment.depths for the depths')
        _check_sphere_options_used(cfg)


def _check_sphere_options_used(cfg: DictConfig) -> None:
    """``run_sphere`` computes ``experiment.depths`` x ``experiment.alphas``
    on the sphere: a ``model.depth`` / ``model.alpha`` typed beside them would
    be ignored (a sweep over it would repeat one run), and so would the alphas
    where ``model.alpha_gamma`` sets alpha = depth^-gamma, and any dataset
    option (it reads no dataset)."""
    exp = cfg.experiment
    given = runner.command_line_keys()
    typed = sorted(k for k in given if k == 'dataset' or k.startswith('dataset.'))
    if typed:
        key = typed[0]
        value = (choice_name('dataset', cfg.get('dataset')) if key == 'dataset'
                 else OmegaConf.select(cfg, key))
        raise ConfigError(
            f'{key}={value} would be ignored: experiment={exp.name} reads no dataset: '
            'it integrates the kernel over the sphere S^(d-1) (experiment.d) and checks '
            'it on experiment.gram_points uniform points; drop it')
    for key in ('depth', 'alpha'):
        runner.require_scalar_not_beside_list(cfg, given, f'model.{key}',
                                              f'experiment.{key}s', 'computes')
    alphas = as_list(exp.get('alphas', None), None)
    gamma = cfg.model.get('alpha_gamma', None)
    require(gamma is None or alphas is None,
            f'experiment.alphas={list(alphas or [])} would be ignored: '
            f'model.alpha_gamma={gamma} sets alpha = depth^-{gamma} at every depth; '
            'add experiment.alphas=null to use it, or model.alpha_gamma=null for '
            'the alphas')


# --- learning-rate schedules and logged steps --------------------------------


def make_schedule(kind: str, lr: float, steps: int,
                  decay_at: Sequence[float] = (0.5, 0.75),
                  decay_factor: float = 0.1,
                  final_fraction: float = 0.0) -> optax.Schedule:
    """The learning rate at each step.

    Args:
        kind: ``constant``; ``step`` (multiply by ``decay_factor`` at each
            fraction ``decay_at`` of ``steps``); ``cosine`` (from ``lr`` to
            ``final_fraction * lr`` over ``steps``, Loshchilov & Hutter 2017).
        lr: the initial learning rate.
        steps: total steps.
        decay_at: fractions of ``steps`` where ``step`` decays.
        decay_factor: the factor of each decay.
        final_fraction: the cosine schedule's final fraction of ``lr``.

    Returns:
        An optax schedule ``step -> lr``.
    """
    if kind == 'constant':
        return optax.constant_schedule(lr)
    if kind == 'step':
        scales: dict[int, float] = {}
        for f in decay_at:
            boundary = max(1, int(round(float(f) * steps)))
            scales[boundary] = scales.get(boundary, 1.0) * float(decay_factor)
        return optax.piecewise_constant_schedule(lr, scales)
    if kind == 'cosine':
        return optax.cosine_decay_schedule(lr, max(int(steps), 1),
                                           alpha=float(final_fraction))
    raise ValueError(f'unknown schedule {kind!r}; use one of {SCHEDULES}')


def schedule_times(schedule: optax.Schedule, steps: int) -> np.ndarray:
    """``t_s = sum_{j < s} lr_j`` for ``s = 0..steps`` (gradient-flow time)."""
    count = max(int(steps), 0)
    rates = np.broadcast_to(
        np.asarray(schedule(jnp.arange(count)), np.float64), (count,))
    return np.concatenate([[0.0], np.cumsum(rates)])


def logged_steps(steps: int, spec: Any, spacing: str = 'log',
                 extra: Sequence[int] = ()) -> list[int]:
    """Steps where the spectrum is measured: always 0 and ``steps``.

    Args:
        steps: total steps.
        spec: a count (log- or linearly spaced) or a list of steps.
        spacing: ``log`` or ``linear`` for a count.
        extra: more steps to include (e.g. learning-rate decay boundaries).
    """
    if OmegaConf.is_list(spec) or isinstance(spec, (list, tuple)):
        points = {int(s) for s in spec}
    elif spacing == 'linear':
        points = set(np.round(np.linspace(0, steps, int(spec))).astype(int))
    else:
        count = max(int(spec) - 1, 1)
        points = set(np.round(np.geomspace(1, max(steps, 1), count)).astype(int))
    points |= {0, int(steps)} | {int(s) for s in extra}
    return sorted(int(s) for s in points if 0 <= s <= steps)


# --- spectrum rows ----------------------------------------------------------


def spectrum_rows(rows: RowWriter, gram: np.ndarray, target: np.ndarray,
                  output: Optional[np.ndarray], ks: Sequence[int], top_k: int,
                  **params: Any) -> dict[str, float]:
    """Writes the rows of one kernel: eigenvalues, alignment, energies.

    Args:
        rows: the row writer.
        gram: ``(n, n)`` Gram matrix.
        target: ``(n, c)`` targets ``Y``.
        output: ``(n, c)`` network outputs (None: target only).
        ks: the grid of ``k`` for ``E_k`` (``n`` is added).
        top_k: how many leading eigenvalues to write.
        **params: columns of every row (step, split, kernel, ...).

    Returns:
        A few values for the summary table.
    """
    evals, evecs = spectrum.eigh_desc(gram)
    n = len(evals)
    for i in range(min(int(top_k), n)):
        rows.add('eigenvalue', evals[i], rank=i + 1, **params)
    rows.add('trace', float(np.sum(evals)), **params)
    align = spectrum.kernel_target_alignment(gram, target)
    rows.add('alignment', align, **params)
    rows.add('alignment_centered', spectrum.centered_alignment(gram, target),
             **params)
    grid = spectrum.k_grid(n, ks)
    vectors = {'target': target}
    if output is not None:
        vectors['output'] = output
        vectors['residual'] = target - output
    summary = {'lambda_1': float(evals[0]), 'alignment': align}
    for name, v in vectors.items():
        fractions = spectrum.energy_fractions(evecs, v, grid)
        for k, e in zip(grid, fractions):
            rows.add('energy', e, rank=k, vector=name, **params)
        if name == 'target':
            summary[f'E_{grid[0]}(target)'] = float(fractions[0])
    return summary


def precision(cfg: DictConfig) -> str:
    """The study's precision: ``experiment.precision``, else the root's."""
    value = cfg.experiment.get('precision', None) or cfg.get('precision', 'float32')
    return str(value)


@contextlib.contextmanager
def precision_scope(cfg: DictConfig, rows: Optional[RowWriter] = None):
    """Runs a study at ``experiment.precision`` (when set) instead of the root's.

    The root config's ``precision`` wins over values an experiment file sets
    at the top level (``_self_`` is last in conf/config.yaml), so a study that
    must run in float32 says ``experiment.precision: float32``; it is applied
    with ``jax.enable_x64`` for the duration of the study and written on the
    rows' ``precision`` column.
    """
    value = cfg.experiment.get('precision', None)
    if value is None:
        yield
        return
    if rows is not None:
        rows.base['precision'] = str(value)
    with jax.enable_x64(str(value) == 'float64'):
        yield


def _kernel_dtype(cfg: DictConfig) -> Any:
    return np.float64 if precision(cfg) == 'float64' else np.float32


def _train_dtype(cfg: DictConfig) -> Any:
    name = cfg.experiment.get('train_dtype', None)
    if name is None:
        name = precision(cfg)
    if name == 'float64' and not jax.config.jax_enable_x64:
        raise ValueError('experiment.train_dtype=float64 needs precision=float64')
    return jnp.dtype(name)


def _infinite_kernel(cfg: DictConfig, kernel_fn, x: np.ndarray) -> np.ndarray:
    """The analytic NTK on ``x`` through the cached block engine."""
    from ntkexp.experiments import kernel_regression  # pylint: disable=g-import-not-at-top
    engine = kernel_regression.make_engine(cfg, kernel_fn, ('ntk',))
    return np.asarray(engine(x, None, desc='infinite-width NTK')['ntk'],
                      np.float64)


def _outputs_for_loss(loss: str, fx: np.ndarray) -> np.ndarray:
    """What the residual is measured against: ``f`` (mse) or ``softmax(f)``."""
    if loss == 'xent':
        return np.asarray(jax.nn.softmax(jnp.asarray(fx), axis=-1), np.float64)
    return np.asarray(fx, np.float64)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- study 1: spectrum along training (Kopitkov & Indelman 2019) ------------


def run(cfg: DictConfig, run_dir, rows: RowWriter) -> pd.DataFrame:
    """Study 1 (see :func:`_run_training`) at ``experiment.precision``."""
    with precision_scope(cfg, rows):
        return _run_training(cfg, run_dir, rows)


def _run_training(cfg: DictConfig, run_dir, rows: RowWriter) -> pd.DataFrame:
    """Trains one network and eigen-decomposes its NTK at logged steps.

    Args:
        cfg: the composed config; see ``conf/experiment/alignment.yaml``.
        run_dir: the run directory (unused; everything goes to ``rows``).
        rows: the row writer.

    Returns:
        One summary line per logged step (loss, lambda_1, alignment, E_k).
    """
    del run_dir
    exp = cfg.experiment
    setup = str(exp.get('setup', None) or exp.name)
    steps = int(exp.steps)
    loss_name = str(exp.get('loss', 'mse'))
    dtype = _train_dtype(cfg)
    rows.base['train_dtype'] = str(dtype)  # the network's; precision: the kernels'

    data = instantiate(cfg.dataset)
    rows.fill_sizes(data)  # null n_train / n_test: the sizes loaded
    x = jnp.asarray(data.x_train, dtype)
    y = np.asarray(data.y_train, np.float64)
    on_test = bool(exp.get('on_test', False))
    x_test = jnp.asarray(data.x_test, dtype)
    y_test = np.asarray(data.y_test, np.float64)
    init_fn, apply_fn, kernel_fn = instantiate(cfg.model, out_dim=y.shape[1])
    key = jax.random.PRNGKey(int(cfg.get('seed', 0)))
    _, params = init_fn(key, x.shape)
    params = training.cast(params, dtype)

    ntk = EmpiricalNTK.for_run(cfg, apply_fn, _implementation_code(
        exp.get('ntk_implementation', 'auto')), exp.get('ntk_block_size', None))
    ks = [int(k) for k in as_list(exp.get('energy_k', [1, 2, 5, 10]))]
    top_k = int(exp.get('top_k', 20))
    tag = dict(setup=setup, schedule=str(exp.schedule))

    k_inf = None
    if exp.get('infinite', True):
        start = time_mod.time()
        k_inf = _infinite_kernel(cfg, kernel_fn,
                                 np.asarray(data.x_train, _kernel_dtype(cfg)))
        rows.add('infinite_seconds', time_mod.time() - start, **tag)
        spectrum_rows(rows, k_inf, y, None, ks, top_k, step=0, time=0.0,
                      split='train', kernel='infinite', **tag)

    start = time_mod.time()
    k0 = ntk(x, None, params)
    rows.add('ntk_seconds', time_mod.time() - start, step=0, **tag)
    rows.add('ntk_implementation', ntk.implementation, **tag)
    rows.add('ntk_block_size', ntk.last_block, **tag)
    if ntk.last_bytes is not None:
        rows.add('ntk_block_bytes', ntk.last_bytes, **tag)
    momentum = float(exp.get('momentum', 0.9))
    optimizer_name = str(exp.get('optimizer', 'gd'))
    lr, max_lr = training.resolve_learning_rate(
        exp.get('lr', None), exp.get('lr_fraction', None), k0, y.size,
        momentum if optimizer_name == 'momentum' else 0.0)
    rows.add('max_lr', max_lr, **tag)
    rows.add('lr_used', lr, **tag)
    schedule, times, log_at = _schedule_and_log_steps(exp, lr, steps)

    optimizer = training.make_optimizer(optimizer_name, schedule, momentum)
    batch_size = exp.get('batch_size', None)
    if optimizer_name == 'gd':
        batch_size = None
    trainer = training.Trainer(apply_fn, training.get_loss(loss_name), optimizer,
                               x, jnp.asarray(y, dtype), batch_size,
                               jax.random.fold_in(key, 1))
    loss_fn = training.get_loss(loss_name)
    state = trainer.init(params)
    summary = []
    for step in log_at:
        state = trainer.advance(state, step)
        jax.block_until_ready(state.params)
        at = dict(step=step, time=float(times[step]),
                  lr=float(schedule(min(step, max(steps - 1, 0)))), **tag)
        start = time_mod.time()
        k_t = k0 if step == 0 else ntk(x, None, state.params)
        rows.add('ntk_seconds', time_mod.time() - start, **at)
        fx = np.asarray(apply_fn(state.params, x), np.float64)
        if not np.all(np.isfinite(fx)):
            raise FloatingPointError(
                f'the network diverged by step {step}; lower experiment.lr or '
                'experiment.lr_fraction')
        train_loss = float(loss_fn(jnp.asarray(fx), jnp.asarray(y)))
        rows.add('loss', train_loss, split='train', **at)
        line = dict(step=step, time=float(times[step]), loss=train_loss)
        line.update(spectrum_rows(rows, k_t, y, _outputs_for_loss(loss_name, fx),
                                  ks, top_k, split='train', kernel='empirical',
                                  **at))
        rows.add('ntk_change', _relative(k_t, k0), split='train', **at)
        if k_inf is not None:
            rows.add('ntk_distance_infinite', _relative(k_t, k_inf),
                     split='train', **at)
        line.update(_test_rows(rows, data, apply_fn, state.params, x_test, y_test,
                               loss_name, loss_fn, at, ntk if on_test else None, ks,
                               top_k))
        summary.append(line)
    return pd.DataFrame(summary)


def _schedule_and_log_steps(exp: DictConfig, lr: float, steps: int):
    """The learning-rate schedule (``experiment.schedule``), its gradient-flow
    time at each step and the steps logged (the decay steps of a step
    schedule among them).

    Returns:
        ``(schedule, times, log_at)``.
    """
    schedule = make_schedule(str(exp.schedule), lr, steps,
                             as_list(exp.get('decay_at', [0.5, 0.75])),
                             float(exp.get('decay_factor', 0.1)),
                             float(exp.get('final_lr_fraction', 0.0)))
    times = schedule_times(schedule, steps)
    extra = []
    if exp.schedule == 'step':
        extra = [max(1, int(round(float(f) * steps)))
                 for f in as_list(exp.get('decay_at', []))]
    log_at = logged_steps(steps, exp.get('log_steps', 9),
                          str(exp.get('log_spacing', 'log')), extra)
    return schedule, times, log_at


def _test_rows(rows: RowWriter, data, apply_fn, params, x_test, y_test: np.ndarray,
               loss_name: str, loss_fn, at: dict, test_ntk, ks: list[int],
               top_k: int) -> dict:
    """The network on the test set at a logged step: its loss and accuracy
    and, with ``experiment.on_test`` (``test_ntk``), the spectrum of its
    empirical NTK there. Returns the summary's test columns."""
    ft = np.asarray(apply_fn(params, x_test), np.float64)
    rows.add('loss', float(loss_fn(jnp.asarray(ft), jnp.asarray(y_test))),
             split='test', **at)
    line = {}
    if data.labels_test is not None:
        acc = solve.accuracy(ft, data.labels_test)
        rows.add('accuracy', acc, split='test', **at)
        line['test_accuracy'] = acc
    if test_ntk is not None:
        k_test = test_ntk(x_test, None, params)
        spectrum_rows(rows, k_test, y_test, _outputs_for_loss(loss_name, ft),
                      ks, top_k, split='test', kernel='empirical', **at)
    return line


# --- study 2: convergence along a kernel principal component (Jacot Fig. 3) --


def principal_components(kernel: np.ndarray, count: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Non-centred kernel PCA w.r.t. the empirical distribution of ``N`` points.

    Jacot et al. 2018, Sec. 6: the eigenfunctions of ``f -> E_x'[K(., x')
    f(x')]`` restricted to the points are ``f^(i) = sqrt(N) u_i`` (unit norm
    ``||f||_p^2 = mean f(x)^2``) with eigenvalues ``lambda_i = eig_i(K / N)``.
    Signs are fixed so that each component's largest-magnitude entry is
    positive.

    Returns:
        ``(lambdas, components)``: ``(count,)`` and ``(N, count)``.
    """
    n = kernel.shape[0]
    evals, evecs = spectrum.eigh_desc(kernel)
    comps = evecs[:, :count] * math.sqrt(n)
    signs = np.sign(comps[np.argmax(np.abs(comps), axis=0), np.arange(comps.shape[1])])
    return evals[:count] / n, comps * np.where(signs == 0, 1.0, signs)


def run_principal_component(cfg: DictConfig, run_dir, rows: RowWriter
                            ) -> pd.DataFrame:
    """Study 2 (see :func:`_run_principal_component`) at ``experiment.precision``."""
    with precision_scope(cfg, rows):
        return _run_principal_component(cfg, run_dir, rows)


def _run_principal_component(cfg: DictConfig, run_dir, rows: RowWriter
                             ) -> pd.DataFrame:
    """Jacot et al. 2018 Fig. 3: training along one kernel principal component.

    The infinite-width NTK (``kernel_fn``; Jacot approximated it with a
    width-10^4 network) on the ``N`` training inputs gives the components.
    For each of ``n_inits`` initialisations of the scalar-output network with
    outputs ``f_0``, the target is ``f* = f_0 + amplitude * f^(component)``;
    full-batch GD on ``0.5 mean((f - f*)^2)`` runs for ``steps`` steps with
    ``lr = lr_fraction * 2 N / lambda_max(K)``. Rows per logged step:
    ``pc_coefficient`` (``g_t = <f_t - f*, f^(i)>_p``, starts at ``-a``),
    ``pc_orthogonal`` (``||h_t||_p``), ``pc_theory`` (``a exp(-lambda_i t)``),
    ``pc_theory_gd`` (``a (1 - lr lambda_i)^s``, the discrete-time value),
    ``loss``; once: ``pc_eigenvalue`` (``rank``) and ``pc_coordinate``
    (``point``, ``component``, ``label``) for Fig. 3a.

    Returns:
        The last logged step of each initialisation.
    """
    del run_dir
    exp = cfg.experiment
    setup = str(exp.get('setup', None) or exp.name)
    dtype = _train_dtype(cfg)
    comp = int(exp.get('component', 2))
    rows.base['train_dtype'] = str(dtype)  # the network's; precision: the kernels'
    amplitude = float(exp.get('amplitude', 0.5))
    steps = int(exp.steps)

    data = instantiate(cfg.dataset)
    rows.fill_sizes(data)  # null n_train / n_test: the sizes loaded
    n = int(data.x_train.shape[0])
    init_fn, apply_fn, kernel_fn = instantiate(cfg.model, out_dim=1)
    k_inf = _infinite_kernel(cfg, kernel_fn,
                             np.asarray(data.x_train, _kernel_dtype(cfg)))
    count = max(comp, max([int(c) for c in as_list(exp.get('scatter', [2, 3]))]
                          + [1]), int(exp.get('top_k', 10)))
    count = min(count, n)
    lambdas, comps = principal_components(k_inf, count)
    tag = dict(setup=setup)
    for i, lam in enumerate(lambdas):
        rows.add('pc_eigenvalue', lam, rank=i + 1, **tag)
    labels = data.labels_train
    for c in as_list(exp.get('scatter', [2, 3])):
        c = int(c)
        if c > count:
            continue
        for i in range(n):
            extra = {} if labels is None else {'label': int(labels[i])}
            rows.add('pc_coordinate', comps[i, c - 1], point=i, component=c,
                     **extra, **tag)
    lam = float(lambdas[comp - 1])
    direction = comps[:, comp - 1]
    lr, max_lr = training.resolve_learning_rate(
        exp.get('lr', None), exp.get('lr_fraction', None), k_inf, n)
    rows.add('max_lr', max_lr, **tag)
    rows.add('lr_used', lr, **tag)
    log_at = logged_steps(steps, exp.get('log_steps', 41),
                          str(exp.get('log_spacing', 'linear')))
    x = jnp.asarray(data.x_train, dtype)
    loss_fn = training.get_loss('mse')
    summary = []
    for init in range(int(exp.get('n_inits', 2))):
        key = jax.random.fold_in(jax.random.PRNGKey(int(cfg.get('seed', 0))), init)
        _, params = init_fn(key, x.shape)
        params = training.cast(params, dtype)
        f0 = np.asarray(apply_fn(params, x), np.float64)[:, 0]
        target = f0 + amplitude * direction
        trainer = training.Trainer(apply_fn, loss_fn,
                                   training.make_optimizer('gd', lr), x,
                                   jnp.asarray(target[:, None], dtype))
        state = trainer.init(params)
        for step in log_at:
            state = trainer.advance(state, step)
            ft = np.asarray(apply_fn(state.params, x), np.float64)[:, 0]
            diff = ft - target
            g = float(np.mean(diff * direction))
            h = diff - g * direction
            at = dict(step=step, time=lr * step, init=init, **tag)
            rows.add('pc_coefficient', g, **at)
            rows.add('pc_orthogonal', float(np.sqrt(np.mean(h * h))), **at)
            rows.add('pc_theory', amplitude * math.exp(-lam * lr * step), **at)
            rows.add('pc_theory_gd', amplitude * (1 - lr * lam) ** step, **at)
            rows.add('loss', 0.5 * float(np.mean(diff * diff)), **at)
        summary.append(dict(init=init, step=step, time=lr * step, g=g,
                            h=float(np.sqrt(np.mean(h * h))),
                            theory=amplitude * math.exp(-lam * lr * step),
                            lambda_i=lam))
    return pd.DataFrame(summary)


# --- study 3: NTK spectra on the sphere (Belfer et al. 2021) -----------------


def dot_product_kernel(kernel_fn, d: int, get: str = 'ntk',
                       dtype: Any = np.float64) -> Callable[[np.ndarray], np.ndarray]:
    """``k(t) = K(e1, t e1 + sqrt(1 - t^2) e2)`` from an analytic ``kernel_fn``.

    The NTK of an FC or flat residual network is a function of ``<x, x'>``
    and the norms, so on the unit sphere it is a dot-product kernel.
    """
    def kfun(t: np.ndarray) -> np.ndarray:
        x0, x = spectrum.sphere_pair_inputs(d, t)
        out = kernel_fn(np.asarray(x0, dtype), np.asarray(x, dtype), get)
        return np.asarray(out, np.float64).reshape(-1)
    return kfun


def run_sphere(cfg: DictConfig, run_dir, rows: RowWriter) -> pd.DataFrame:
    """Study 3 (see :func:`_run_sphere`) at ``experiment.precision``."""
    with precision_scope(cfg, rows):
        return _run_sphere(cfg, run_dir, rows)


def _run_sphere(cfg: DictConfig, run_dir, rows: RowWriter) -> pd.DataFrame:
    """Mercer spectra of infinite-width kernels on S^(d-1) by harmonic degree.

    For each depth in ``experiment.depths`` (null: the model's) and, for
    models with a residual scale, each ``alpha`` in ``experiment.alphas``
    (null: the model's), and each kernel in ``experiment.kernels``:

    * ``eigenvalue`` (``degree``, ``multiplicity``): Funk-Hecke eigenvalues
      ``lambda_l``, ``l = 0..lmax``, by ``n_quad``-node Gauss-Jacobi
      quadrature of the analytic kernel (float64);
    * ``eigenvalue_normalized``: ``lambda_l / k(1)`` (shape only);
    * ``decay_exponent`` (``parity`` all / even / odd): slope of ``log
      lambda_l`` on ``log l`` over ``fit_degrees`` (theory: ``-d``), with
      ``fit_points`` the eigenvalues it used: those above the quadrature
      noise (:func:`ntkexp.spectrum.fit_decay`; NaN with 0 points where
      they all vanish, e.g. odd degrees of a one-block ReLU ResNet without
      biases);
    * ``mercer_fraction``: ``sum_{l<=lmax} N(d, l) lambda_l / k(1)`` (-> 1);
    * ``kernel_shape`` (``t``): ``k(t) / k(1)`` on ``shape_points`` values of
      ``t`` in [-1, 1] (a "spiky" kernel has small values away from ``t = 1``);
    * with ``gram_points > 0``: ``gram_eigenvalue`` and ``gram_purity``
      (``degree``, ``n_eigenvectors``): eigenvalues of ``K / n`` on ``n`` uniform points,
      for each degree ``l <= gram_lmax`` the mean over the ``N(d, l)``
      eigenvectors with the most degree-``l`` energy
      (:func:`ntkexp.spectrum.degree_energies`, :func:`ntkexp.spectrum.group_by_degree`).

    Returns:
        The fitted exponents.
    """
    del run_dir
    exp = cfg.experiment
    setup = str(exp.get('setup', None) or exp.name)
    d = int(exp.d)
    lmax = int(exp.get('lmax', 64))
    n_quad = int(exp.get('n_quad', 4096))
    fit = [int(v) for v in as_list(exp.get('fit_degrees', [8, lmax]))]
    dtype = _kernel_dtype(cfg)
    # A ResNet's own alpha is swept; with alpha_gamma it is depth^-gamma and
    # the rows say so by alpha_gamma (runner.base_columns).
    has_alpha = 'alpha' in cfg.model and cfg.model.get('alpha_gamma', None) is None
    depths = as_list(exp.get('depths', None)) or [int(cfg.model.depth)]
    alphas = (as_list(exp.get('alphas', None)) or [float(cfg.model.alpha)]
              if has_alpha else [None])
    kernels = as_list(exp.get('kernels', ['ntk']))
    degrees = np.arange(lmax + 1)
    mult = np.array([spectrum.harmonic_dimension(d, l) for l in degrees])
    shape_t = np.linspace(-1.0, 1.0, int(exp.get('shape_points', 41)))
    n_gram = int(exp.get('gram_points', 0))
    gram_lmax = int(exp.get('gram_lmax', 6))
    x_gram = spectrum.sphere_points(n_gram, d, int(cfg.get('seed', 0))) if n_gram else None
    for column, key in runner.base_column_sources().items():
        if key.startswith('dataset.'):  # no dataset is read (S^(d-1) is experiment.d)
            rows.base.pop(column, None)
    summary = []
    for depth in depths:
        for alpha in alphas:
            overrides = {'depth': int(depth)}
            if alpha is not None:
                overrides['alpha'] = float(alpha)
            _, _, kernel_fn = instantiate(cfg.model, out_dim=1, **overrides)
            tag = dict(setup=setup, d=d, depth=int(depth),
                       **({'alpha': float(alpha)} if alpha is not None else {}))
            for get in kernels:
                kfun = dot_product_kernel(kernel_fn, d, str(get), dtype)
                k1 = float(kfun(np.array([1.0]))[0])
                lam = spectrum.funk_hecke_eigenvalues(kfun, d, lmax, n_quad)
                at = dict(kernel=str(get), **tag)
                for l in degrees:
                    rows.add('eigenvalue', lam[l], degree=int(l),
                             multiplicity=int(mult[l]), method='funk_hecke', **at)
                    rows.add('eigenvalue_normalized', lam[l] / k1, degree=int(l),
                             method='funk_hecke', **at)
                rows.add('mercer_fraction', float(np.sum(mult * lam) / k1), **at)
                line = dict(kernel=str(get), **tag)
                floor = spectrum.EIGENVALUE_NOISE * float(np.max(np.abs(lam)))
                for parity, sel in (('all', lambda l: True),
                                    ('even', lambda l: l % 2 == 0),
                                    ('odd', lambda l: l % 2 == 1)):
                    mask = np.array([fit[0] <= l <= fit[1] and sel(l) for l in degrees])
                    slope, points = spectrum.fit_decay(degrees[mask], lam[mask],
                                                       floor)
                    rows.add('decay_exponent', slope, parity=parity,
                             degree_min=fit[0], degree_max=fit[1],
                             fit_points=points, **at)
                    line[f'exponent_{parity}'] = slope
                for t, v in zip(shape_t, kfun(shape_t)):
                    rows.add('kernel_shape', v / k1, t=float(t), **at)
                if x_gram is not None:
                    gram = np.asarray(kernel_fn(np.asarray(x_gram, dtype), None,
                                                str(get)), np.float64) / n_gram
                    evals, evecs = spectrum.eigh_desc(gram)
                    energies = spectrum.degree_energies(x_gram, evecs, gram_lmax)
                    for l, (mean, cnt, purity) in spectrum.group_by_degree(
                            evals, energies, d).items():
                        rows.add('gram_eigenvalue', mean, degree=l, n_eigenvectors=cnt,
                                 method='gram', n_points=n_gram, **at)
                        rows.add('gram_purity', purity, degree=l, n_eigenvectors=cnt,
                                 n_points=n_gram, **at)
                summary.append(line)
    return pd.DataFrame(summary)
