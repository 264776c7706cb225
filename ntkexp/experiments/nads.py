"""Experiment ``nads``: the directional inductive bias of an architecture.

Reproduces Ortiz-Jimenez, Modas, Moosavi-Dezfooli and Frossard 2020, "Neural
Anisotropy Directions" (NeurIPS 2020) for the architectures of
:mod:`ntkexp.models`:

* **Accuracy maps** (Sec. 2, Fig. 1): for every direction ``v`` of a grid of
  2-D Fourier basis images (:func:`ntkexp.anisotropy.fourier_direction`), the
  linearly separable data ``x = epsilon * y * v + w``, ``w ~ N(0, sigma^2 (I -
  v v^T))`` (:mod:`ntkexp.anisotropy`); a network is trained on ``n_train``
  samples and its test accuracy on ``n_test`` fresh samples is one pixel of
  the map. Training follows the authors' ``directional_bias.py``: SGD,
  learning rate decayed linearly to 0, gradient-norm clipping, cross-entropy
  on two logits, no momentum or weight decay.
* **Infinite-width view**: NNGP / NTK kernel regression (``t = inf``, float64
  solves, :mod:`ntkexp.solve`) on the same data, the NTK's preference for each
  direction. An FC kernel is rotation invariant, so its accuracy is the same
  for every direction up to sampling noise; convolutional kernels are not.
* **NADs** (Sec. 3, Fig. 2): eigenvectors of ``G = E_theta[grad_x f grad_x
  f^T]`` at initialisation (scalar output), by Monte Carlo over
  ``nad.n_networks`` initialisations (:func:`ntkexp.anisotropy.input_gradients`);
  the eigenvalues, the leading NADs as images, and the gradient energy ``v^T G
  v / (tr G / d)`` along every Fourier direction (a map comparable with the
  accuracy maps: directions of small energy are the ones a network struggles
  to learn).

Every direction uses the same labels and base noise draws (projected onto the
direction's orthogonal complement) and every network the same initialisation
key, so differences between directions come from ``v`` alone.

Rows (all with ``dataset='directional'`` and the data options ``image_h``,
``image_w``, ``channels``, ``epsilon``, ``sigma``, ``n_train``, ``n_test``):

* ``accuracy`` (``view`` = ``finite`` / ``ntk`` / ``nngp``, ``freq_i``,
  ``freq_j`` in ``[0, H) x [0, W)``, ``part``): test accuracy along the Fourier
  direction ``(freq_i, freq_j)``; ``train_accuracy`` for ``finite``;
* ``nad_eigenvalue`` (``nad_index``): the eigenvalues of ``G``, decreasing;
* ``nad_participation_ratio``: ``(sum l)^2 / (d sum l^2)`` (1 = isotropic);
* ``nad_energy`` (``freq_i``, ``freq_j``, ``part``): ``v^T G v / (tr G / d)``
  for every Fourier direction of the full grid;
* ``nad_pixel`` (``nad_index``, ``pixel_h``, ``pixel_w``, ``channel``): the
  leading ``nad.n_images`` NADs as images (for the figures);
* ``nad_x0_overlap`` (``nad_index``, with ``nad.eval_point=fixed``):
  ``|<u_k, x0 / |x0|>|`` for the same leading NADs (see ``nads.yaml``: exact
  gradients at one point single out ``x0`` itself);
* ``train_seconds``, ``kernel_seconds``, ``nad_seconds``.

The full eigendecomposition is also saved as ``nads.npz`` in the run
directory.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from ntkexp import anisotropy
from ntkexp import host_memory
from ntkexp import solve
from ntkexp import training
from ntkexp.experiments.options import as_list
from ntkexp.records import RowWriter
from ntkexp.runner import ConfigError, choice_name, require

VIEWS = ('finite', 'kernel')
KERNELS = ('nngp', 'ntk')
LOSSES = ('xent', 'mse')
SCHEDULES = ('linear', 'constant')
DATASET_NAME = 'directional'


def image_shape(exp: DictConfig) -> tuple[int, int, int]:
    """``(H, W, C)`` from ``experiment.image_size`` and ``experiment.channels``."""
    size = as_list(exp.image_size)
    if len(size) == 1:
        size = size * 2
    return int(size[0]), int(size[1]), int(exp.get('channels', 1))


def directions_of(exp: DictConfig) -> list[tuple[int, int]]:
    """The frequencies ``(i, j)`` of the accuracy map (canonical, sorted)."""
    height, width, _ = image_shape(exp)
    part = str(exp.get('fourier_part', 'real'))
    explicit = exp.get('frequencies', None)
    if explicit:
        out = []
        for pair in explicit:
            i, j = (int(a) for a in pair)
            key = anisotropy.canonical(i, j, height, width)
            if key not in out:
                out.append(key)
        return out
    return anisotropy.fourier_frequencies(height, width,
                                          int(exp.get('freq_stride', 1)), part)


def validate(cfg: DictConfig) -> None:
    """Checks the experiment options (one clear line per problem).

    Raises:
        ConfigError: a bad value, naming the key and the valid values.
    """
    exp = cfg.experiment
    _check_data(cfg)
    height, width, channels = image_shape(exp)
    _check_frequencies(exp, height, width)
    _check_views(exp)
    _check_training(exp.train)
    _check_nads(exp)
    _check_model_input(cfg, (1, height, width, channels))


def _check_data(cfg: DictConfig) -> None:
    """No dataset (the experiment makes its own); the images' size and the
    directional data's signal, noise and sizes (Ortiz-Jimenez et al. 2020,
    Sec. 2)."""
    exp = cfg.experiment
    dataset = cfg.get('dataset', None)
    require(dataset is None,
            f"dataset={choice_name('dataset', dataset)} would be ignored: "
            'experiment=nads generates its own directional data (Ortiz-Jimenez '
            'et al. 2020, Sec. 2); drop the dataset override and '
            'size the data with experiment.image_size, experiment.n_train and '
            'experiment.n_test')
    size = as_list(exp.get('image_size'))
    require(len(size) in (1, 2) and all(isinstance(s, int) and s >= 2 for s in size),
            f'experiment.image_size={size} is invalid; give [height, width] with '
            'both >= 2 (e.g. experiment.image_size=[8,8])')
    require(isinstance(exp.get('channels', 1), int) and exp.get('channels', 1) >= 1,
            f"experiment.channels={exp.get('channels')} must be an integer >= 1")
    require(float(exp.epsilon) > 0,
            f'experiment.epsilon={exp.epsilon} must be > 0 (the signal along v)')
    require(float(exp.sigma) >= 0,
            f'experiment.sigma={exp.sigma} must be >= 0 (the noise scale)')
    for key in ('n_train', 'n_test'):
        require(int(exp[key]) >= 2, f'experiment.{key}={exp[key]} must be >= 2')


def _check_frequencies(exp: DictConfig, height: int, width: int) -> None:
    """The Fourier directions of the accuracy maps and their part."""
    part = exp.get('fourier_part', 'real')
    require(part in anisotropy.PARTS,
            f'experiment.fourier_part={part!r} is invalid; use real or imag')
    require(int(exp.get('freq_stride', 1)) >= 1,
            f"experiment.freq_stride={exp.get('freq_stride')} must be >= 1")
    for pair in as_list(exp.get('frequencies', None)):
        pair = as_list(pair)
        require(len(pair) == 2 and all(isinstance(a, int) for a in pair),
                f'experiment.frequencies has {pair}; give pairs [i, j] of '
                'integers, e.g. experiment.frequencies=[[0,1],[2,3]]')
        require(part == 'real' or not anisotropy.is_self_conjugate(
                    pair[0], pair[1], height, width),
                f'experiment.frequencies has {pair}, whose imaginary part is zero '
                'on this image size; drop it or use experiment.fourier_part=real')


def _check_views(exp: DictConfig) -> None:
    """Which accuracies (finite nets, kernels) and which kernels."""
    views = as_list(exp.get('accuracy', []))
    require(set(views) <= set(VIEWS),
            f'experiment.accuracy={views} is invalid; choose from {list(VIEWS)}')
    kernels = as_list(exp.get('kernels', []))
    require(set(kernels) <= set(KERNELS) and ('kernel' not in views or kernels),
            f'experiment.kernels={kernels} is invalid; choose a non-empty subset '
            f'of {list(KERNELS)}')


def _check_training(train: DictConfig) -> None:
    """``experiment.train``: the finite networks' SGD (the authors' utils.train)."""
    require(train.loss in LOSSES,
            f'experiment.train.loss={train.loss!r} is invalid; use xent or mse')
    require(train.schedule in SCHEDULES,
            f'experiment.train.schedule={train.schedule!r} is invalid; use linear '
            'or constant')
    require(float(train.lr) > 0, f'experiment.train.lr={train.lr} must be > 0')
    require(int(train.epochs) >= 1,
            f'experiment.train.epochs={train.epochs} must be >= 1')
    require(int(train.batch_size) >= 1,
            f'experiment.train.batch_size={train.batch_size} must be >= 1')
    require(train.clip_norm is None or float(train.clip_norm) > 0,
            f'experiment.train.clip_norm={train.clip_norm} must be > 0 or null')
    require(0 <= float(train.momentum) < 1,
            f'experiment.train.momentum={train.momentum} must be in [0, 1)')


def _check_nads(exp: DictConfig) -> None:
    """``experiment.nad``: how the NADs are estimated, and the kernels' precision."""
    nad = exp.nad
    require(nad.eval_point in anisotropy.EVAL_POINTS,
            f'experiment.nad.eval_point={nad.eval_point!r} is invalid; use fixed '
            'or random')
    require(nad.gradient in anisotropy.GRADIENTS,
            f'experiment.nad.gradient={nad.gradient!r} is invalid; use exact or '
            'finite_difference')
    require(int(nad.n_networks) >= 2,
            f'experiment.nad.n_networks={nad.n_networks} must be >= 2')
    require(int(nad.points_per_network) >= 1,
            f'experiment.nad.points_per_network={nad.points_per_network} must be >= 1')
    require(float(nad.fd_scale) > 0,
            f'experiment.nad.fd_scale={nad.fd_scale} must be > 0')
    require(int(nad.n_images) >= 0,
            f'experiment.nad.n_images={nad.n_images} must be >= 0')
    precision = exp.get('kernel_precision', None)
    require(precision in (None, 'float32', 'float64'),
            f'experiment.kernel_precision={precision!r} is invalid; use null, '
            'float32 or float64')


def _check_model_input(cfg: DictConfig, shape: tuple[int, int, int, int]) -> None:
    """The model takes images of ``experiment.image_size``."""
    if cfg.get('model') is not None:
        from ntkexp.models import check_input  # pylint: disable=g-import-not-at-top
        try:
            check_input(cfg.model, shape)
        except ValueError as error:
            raise ConfigError(
                f'{error} (experiment.image_size sets the image size)') from None


# ---------------------------------------------------------------------------
# Finite networks
# ---------------------------------------------------------------------------

def make_optimizer(train: DictConfig, total_steps: int):
    """SGD of the authors' ``utils.train``: clipped, linearly decayed lr."""
    import optax  # pylint: disable=g-import-not-at-top
    lr = float(train.lr)
    schedule = (optax.linear_schedule(lr, 0.0, max(total_steps, 1))
                if train.schedule == 'linear' else lr)
    momentum = float(train.momentum) or None
    parts = []
    if train.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(float(train.clip_norm)))
    parts.append(optax.sgd(schedule, momentum=momentum))
    return optax.chain(*parts)


def targets(y: np.ndarray, loss: str) -> np.ndarray:
    """Training targets: one-hot of class ``(y < 0)`` (xent) or ``y`` (mse)."""
    if loss == 'xent':
        return np.stack([y > 0, y < 0], axis=1).astype(np.float32)
    return y[:, None].astype(np.float32)


def predicted_sign(fx: np.ndarray, loss: str) -> np.ndarray:
    """``+-1`` predictions from network outputs (see :func:`targets`)."""
    fx = np.asarray(fx)
    score = fx[:, 0] - fx[:, 1] if loss == 'xent' else fx[:, 0]
    return np.where(score >= 0, 1.0, -1.0)


class FiniteTrainer:
    """Trains one architecture on directional data, one direction at a time.

    A jitted optax step driven by a Python loop over shuffled mini-batches
    (epochs as in the authors' ``utils.train``), with the losses of
    :mod:`ntkexp.training`. The loop is deliberately not a ``lax.fori_loop``
    (as in ``training.Trainer``): XLA on CPU runs convolutions inside a loop
    body tens of times slower than as a top-level jitted call (measured: a
    4-layer, 64-channel CNN step on 64 8x8 images, 0.1 s jitted vs 4 s per
    step in a ``fori_loop``).

    Args:
        init_fn, apply_fn: the network (``out_dim`` 2 for xent, 1 for mse).
        train: the ``experiment.train`` config.
        input_shape: ``(H, W, C)``.
        n_train: training set size (fixes the step count).
        key: the initialisation key (the same for every direction).
    """

    def __init__(self, init_fn, apply_fn, train: DictConfig,
                 input_shape: tuple[int, ...], n_train: int, key):
        import jax  # pylint: disable=g-import-not-at-top
        import optax  # pylint: disable=g-import-not-at-top
        self.train = train
        self.batch = min(int(train.batch_size), n_train)
        self.steps_per_epoch = math.ceil(n_train / self.batch)
        self.total_steps = int(train.epochs) * self.steps_per_epoch
        self.dtype = np.dtype(train.get('dtype', 'float32'))
        self.optimizer = make_optimizer(train, self.total_steps)
        with self._x64():
            # One compiled program instead of many eager random draws.
            params = jax.jit(lambda k: init_fn(k, (-1, *input_shape))[1])(key)
        self.params0 = jax.tree_util.tree_map(
            lambda a: np.asarray(a, self.dtype), params)
        loss = training.get_loss(str(train.loss))
        optimizer = self.optimizer

        def step(params, opt_state, xb, tb):
            grads = jax.grad(lambda p: loss(apply_fn(p, xb), tb))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        self._step = jax.jit(step)
        self._apply = jax.jit(apply_fn)

    def _x64(self):
        """x64 on iff the network is float64.

        neural-tangents' Conv multiplies by a float64 constant when x64 is on,
        which breaks float32 convolutions; the root ``precision`` (for the
        kernels) may have switched x64 on.
        """
        import jax  # pylint: disable=g-import-not-at-top
        return jax.enable_x64(self.dtype == np.float64)

    def predict(self, params, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Network outputs on ``x`` in chunks."""
        with self._x64():
            return np.concatenate([
                np.asarray(self._apply(params, x[i:i + chunk].astype(self.dtype)))
                for i in range(0, len(x), chunk)])

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int):
        """Trains from the shared initialisation; returns the parameters."""
        rng = np.random.default_rng(seed)
        x = x.astype(self.dtype)
        t = targets(y, self.train.loss)
        params = self.params0
        with self._x64():
            opt_state = self.optimizer.init(params)
            for _ in range(int(self.train.epochs)):
                order = rng.permutation(len(x))
                for start in range(0, len(x), self.batch):
                    idx = order[start:start + self.batch]
                    params, opt_state = self._step(params, opt_state, x[idx],
                                                   t[idx])
        return params


# ---------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------

def _kernel_accuracy(cfg: DictConfig, kernel_fn, kernels: list[str],
                     x_train, y_train, x_test, y_test) -> tuple[dict, float]:
    """Kernel regression accuracy at ``t = inf`` per kernel and ``diag_reg``."""
    from ntkexp.experiments.kernel_regression import make_engine  # pylint: disable=g-import-not-at-top
    exp = cfg.experiment
    dtype = exp.get('kernel_precision', None) or cfg.get('precision', 'float64')
    host_memory.check_kernel_solve(len(x_train), len(x_test), tuple(kernels),
                                   np.dtype(dtype).itemsize)
    engine = make_engine(cfg, kernel_fn, tuple(kernels))
    start = time.time()
    k_tt = engine(np.asarray(x_train, dtype), None, desc='train x train')
    k_st = engine(np.asarray(x_test, dtype), np.asarray(x_train, dtype),
                  desc='test x train')
    seconds = time.time() - start
    out = {}
    for kernel in kernels:
        for diag_reg in as_list(exp.get('diag_reg', 1e-4)):
            pred = solve.predict_inf(k_tt[kernel], k_st[kernel], y_train[:, None],
                                     float(diag_reg), kernel)
            out[(kernel, float(diag_reg))] = float(
                np.mean(np.where(pred[:, 0] >= 0, 1.0, -1.0) == y_test))
    return out, seconds


def _nad_rows(cfg: DictConfig, run_dir: Path, add: Callable,
              shape: tuple[int, int, int]) -> tuple[dict, dict]:
    """Estimates the NADs and writes their rows.

    Returns:
        ``(energy, stats)``: the gradient energy per canonical frequency, and
        ``participation_ratio`` / ``top_over_mean`` of the spectrum.
    """
    import jax  # pylint: disable=g-import-not-at-top
    nad = cfg.experiment.nad
    height, width, channels = shape
    init_fn, apply_fn, _ = instantiate(cfg.model, out_dim=1)
    start = time.time()
    key = jax.random.fold_in(jax.random.PRNGKey(int(cfg.get('seed', 0))), 2)
    grads = anisotropy.input_gradients(
        init_fn, apply_fn, shape, int(nad.n_networks), key,
        eval_point=str(nad.eval_point),
        points_per_network=int(nad.points_per_network),
        gradient=str(nad.gradient), fd_scale=float(nad.fd_scale),
        dtype=np.dtype(nad.get('dtype', 'float32')))
    evals, nads = anisotropy.nads_from_gradients(grads)
    seconds = time.time() - start
    method = dict(eval_point=str(nad.eval_point), gradient=str(nad.gradient),
                  n_networks=int(nad.n_networks), n_gradients=len(grads),
                  precision=str(np.dtype(nad.get('dtype', 'float32'))))
    add('nad_seconds', seconds, **method)
    for k, value in enumerate(evals):
        add('nad_eigenvalue', value, nad_index=k, **method)
    ratio = anisotropy.participation_ratio(evals)
    add('nad_participation_ratio', ratio, **method)
    x0 = None
    if nad.eval_point == 'fixed':
        # |<u_k, x0 / |x0|>|: with exact gradients at one point, nets that are
        # (nearly) positively homogeneous have <grad f(x0), x0> = f(x0), which
        # singles out x0 itself (Euler's identity); the authors' large-step
        # finite differences do not.
        x0 = anisotropy.fixed_point(key, shape, np.dtype(nad.get('dtype', 'float32')))
        unit = x0.ravel() / np.linalg.norm(x0)
        for k in range(min(int(nad.n_images), len(nads))):
            add('nad_x0_overlap', abs(float(nads[k] @ unit)), nad_index=k,
                **method)
    for k in range(min(int(nad.n_images), len(nads))):
        image = nads[k].reshape(shape)
        for h in range(height):
            for w in range(width):
                for c in range(channels):
                    add('nad_pixel', image[h, w, c], nad_index=k, pixel_h=h,
                        pixel_w=w, channel=c, **method)
    cov = anisotropy.gradient_covariance(grads)
    energy = {}
    for i, j in anisotropy.fourier_frequencies(height, width, 1, 'real'):
        v = anisotropy.fourier_direction(height, width, i, j, 'real', channels)
        energy[(i, j)] = float(anisotropy.directional_energy(cov, v[None])[0])
        add('nad_energy', energy[(i, j)], freq_i=i, freq_j=j, part='real',
            **method)
    extra = {} if x0 is None else {'x0': x0}
    np.savez_compressed(Path(run_dir) / 'nads.npz', eigenvalues=evals,
                        nads=nads.reshape(-1, *shape), covariance=cov, **extra)
    stats = dict(participation_ratio=ratio,
                 top_over_mean=float(evals[0] / max(evals.mean(), 1e-300)))
    return energy, stats


def run(cfg: DictConfig, run_dir: Path, rows: RowWriter) -> pd.DataFrame:
    """Accuracy per Fourier direction (finite / kernel) and the NADs.

    Args:
        cfg: the composed config (``cfg.model`` the architecture;
            ``cfg.experiment`` the options of ``conf/experiment/nads.yaml``).
        run_dir: the run directory (``nads.npz`` goes there).
        rows: the run's row writer.

    Each row's ``precision`` is the one its value was computed in: the NADs'
    ``nad.dtype``, the finite networks' ``train.dtype``, the kernels'
    ``kernel_precision`` (default: the run's ``precision``).

    Returns:
        One row per direction: ``freq_i, freq_j`` and the accuracy of each view
        (plus ``nad_energy``); without accuracy views, the NAD spectrum's
        participation ratio and top eigenvalue / mean.
    """
    import jax  # pylint: disable=g-import-not-at-top
    exp = cfg.experiment
    shape = image_shape(exp)
    height, width, channels = shape
    seed = int(cfg.get('seed', 0))
    part = str(exp.get('fourier_part', 'real'))
    eps, sigma = float(exp.epsilon), float(exp.sigma)
    n_train, n_test = int(exp.n_train), int(exp.n_test)
    common = dict(dataset=DATASET_NAME, image_h=height, image_w=width,
                  channels=channels, epsilon=eps, sigma=sigma,
                  n_train=n_train, n_test=n_test)

    def add(metric: str, value: Any, **params: Any) -> None:
        rows.add(metric, value, **common, **params)

    summary: dict[tuple[int, int], dict[str, Any]] = {}
    energy, stats = {}, {}
    if exp.nad.get('enabled', True):
        energy, stats = _nad_rows(cfg, run_dir, add, shape)

    views = as_list(exp.get('accuracy', []))
    directions = directions_of(exp) if views else []
    # Common random numbers: one set of labels and base noise for every v.
    rng = np.random.default_rng(seed)
    y_train = anisotropy.balanced_labels(n_train, rng)
    y_test = anisotropy.balanced_labels(n_test, rng)
    noise_train = anisotropy.directional_noise(n_train, shape, sigma, rng)
    noise_test = anisotropy.directional_noise(n_test, shape, sigma, rng)

    trainer = None
    if 'finite' in views:
        out_dim = 2 if exp.train.loss == 'xent' else 1
        init_fn, apply_fn, _ = instantiate(cfg.model, out_dim=out_dim)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
        trainer = FiniteTrainer(init_fn, apply_fn, exp.train, shape, n_train, key)
    kernel_fn = None
    kernels = [str(k) for k in as_list(exp.get('kernels', ['ntk']))]
    if 'kernel' in views:
        _, _, kernel_fn = instantiate(cfg.model, out_dim=1)
    kernel_precision = str(exp.get('kernel_precision', None) or cfg.get('precision', 'float64'))

    for i, j in directions:
        v = anisotropy.fourier_direction(height, width, i, j, part, channels)
        x_train = anisotropy.directional_data(v, y_train, noise_train, eps)
        x_test = anisotropy.directional_data(v, y_test, noise_test, eps)
        where = dict(freq_i=i, freq_j=j, part=part)
        entry = summary.setdefault((i, j), dict(freq_i=i, freq_j=j))
        if (i, j) in energy and part == 'real':
            entry['nad_energy'] = energy[(i, j)]
        if trainer is not None:
            start = time.time()
            params = trainer.fit(x_train, y_train, seed)
            finite = dict(view='finite', precision=str(trainer.dtype), **where)
            add('train_seconds', time.time() - start, steps=trainer.total_steps,
                **finite)
            train_acc = float(np.mean(predicted_sign(
                trainer.predict(params, x_train), exp.train.loss) == y_train))
            test_acc = float(np.mean(predicted_sign(
                trainer.predict(params, x_test), exp.train.loss) == y_test))
            add('train_accuracy', train_acc, **finite)
            add('accuracy', test_acc, **finite)
            entry['finite'] = test_acc
        if kernel_fn is not None:
            accs, seconds = _kernel_accuracy(cfg, kernel_fn, kernels, x_train,
                                             y_train, x_test, y_test)
            in_kernel = dict(precision=kernel_precision, **where)
            add('kernel_seconds', seconds, **in_kernel)
            for (kernel, diag_reg), acc in accs.items():
                add('accuracy', acc, view=kernel, diag_reg=diag_reg, **in_kernel)
                entry[kernel] = acc
    if not summary:
        return pd.DataFrame([{f'nad_{k}': v for k, v in stats.items()}])
    return pd.DataFrame(list(summary.values()))
