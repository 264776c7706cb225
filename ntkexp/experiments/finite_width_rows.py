"""What a ``finite_width`` run measures and writes at its evaluation steps:
losses and accuracies (:class:`Evaluator`), divergence (:class:`DivergenceWatch`),
ensembles of the seeds' networks (:class:`SeedEnsemble`; Lee et al. 2020,
Sec. 3.3), and the rows of the NTK's change, its per-leaf parts, the kernels
at ``t = inf`` and the infinite-width Gaussian (Jacot et al. 2018, Fig. 2).
The rows themselves are listed in :mod:`ntkexp.experiments.finite_width`.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntkexp import ntk_drift
from ntkexp import solve
from ntkexp.records import RowWriter

# Warnings under the experiment's name, which runs' logs and filters use.
log = logging.getLogger('ntkexp.experiments.finite_width')


def apply_batched(apply_fn: Callable, params, x, batch: int = 1024):
    """``apply_fn(params, x)`` in chunks of ``batch`` inputs, as float64 numpy."""
    outs = [np.asarray(apply_fn(params, x[i:i + batch]), np.float64)
            for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def rms_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def circle_angle(x: np.ndarray) -> Optional[np.ndarray]:
    """Angle of 2-D inputs (the circle of Jacot et al. 2018), else None."""
    flat = np.asarray(x).reshape(len(x), -1)
    if flat.shape[1] != 2:
        return None
    return np.arctan2(flat[:, 1], flat[:, 0])


class Evaluator:
    """Losses and accuracies of outputs on the train and test sets."""

    def __init__(self, loss: Callable, y_train, y_test, labels_train,
                 labels_test):
        self.loss = loss
        self.y = {'train': np.asarray(y_train, np.float64),
                  'test': np.asarray(y_test, np.float64)}
        self.labels = {'train': labels_train, 'test': labels_test}

    def values(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """``{split}_loss`` and, for classification, ``{split}_accuracy``."""
        out = {}
        for split, fx in outputs.items():
            out[f'{split}_loss'] = float(
                self.loss(jnp.asarray(fx), jnp.asarray(self.y[split])))
            if self.labels[split] is not None:
                out[f'{split}_accuracy'] = solve.accuracy(fx, self.labels[split])
        return out

    def rows(self, rows: RowWriter, outputs: dict[str, np.ndarray],
             **params) -> dict[str, float]:
        """Writes :meth:`values` as rows at ``params`` and returns them."""
        out = self.values(outputs)
        for metric, value in out.items():
            rows.add(metric, value, **params)
        return out


class DivergenceWatch:
    """Flags a predictor whose training loss blows up (once per predictor).

    A learning rate above ``2 / lambda_max`` of a predictor's kernel makes
    gradient descent diverge. ``lr_fraction`` sets it from the infinite-width
    NTK by default (``lr_kernel=analytic``); a narrow network's empirical NTK
    can be larger (a width-64 CNN's by 1.6x on the digits), and then the
    linearised network, a linear model with that kernel, diverges, while the
    network itself may survive (the catapult phase of Lewkowycz et al. 2020).
    Such rows would be numbers of order 1e47 and chance accuracy with no word
    said: this logs one warning naming the fix and writes a
    ``diverged_at_step`` row (``predictor``, ``width``, ``seed``).
    """

    #: Loss growth over the predictor's step-0 loss taken as divergence: a
    #: network's loss may first rise several times and come down again (the
    #: catapult, 3.5-17x in ``results/lee2020-lr/``).
    FACTOR = 1e3
    #: The same for the linear predictors (:data:`LINEAR`) under full-batch
    #: gradient descent: at a stable rate their convex loss never rises, so a
    #: tenfold rise is divergence already (a short run stops before 1e3).
    LINEAR_FACTOR = 10.0
    LINEAR = ('linearized', 'ntk', 'ntk_mean')

    def __init__(self, lr: float, lr_kernel: Optional[str],
                 full_batch_gd: bool = False, **tag):
        self.lr, self.lr_kernel, self.tag = lr, lr_kernel, tag
        self.full_batch_gd = full_batch_gd
        self.first: dict[str, float] = {}
        self.flagged: set[str] = set()

    def __call__(self, rows: RowWriter, name: str, step: int,
                 loss: float) -> None:
        first = self.first.setdefault(name, loss)
        factor = (self.LINEAR_FACTOR if self.full_batch_gd and name in self.LINEAR
                  else self.FACTOR)
        if name in self.flagged or (np.isfinite(loss) and
                                    loss <= factor * max(first, 1e-30)):
            return
        self.flagged.add(name)
        rows.add('diverged_at_step', step, predictor=name, **self.tag)
        # empirical_outputs first: the traced NTK's bound (lr_kernel=empirical)
        # can be half the true one, which does not cure a net of several
        # outputs (a ten-class FC net diverged with it too).
        fix = {'analytic': 'use experiment.lr_kernel=empirical_outputs (each '
                           'width\'s rate from its initial empirical NTK over the '
                           'outputs too; experiment.lr_kernel=empirical, the '
                           'traced one, may still be too large) or a smaller '
                           'experiment.lr_fraction',
               'empirical': 'use experiment.lr_kernel=empirical_outputs (the '
                            'NTK over outputs too) or a smaller '
                            'experiment.lr_fraction',
               'empirical_outputs': 'use a smaller experiment.lr_fraction'}.get(
                   self.lr_kernel, 'use a smaller experiment.lr')
        log.warning(
            '%s: the %s predictor diverges (train loss %.3g at step %d, %.3g '
            'at step 0): lr=%.4g is above 2/lambda_max of its kernel; %s',
            ', '.join(f'{k} {v}' for k, v in self.tag.items()), name, loss,
            step, first, self.lr, fix)


def ensemble_sizes(n_seeds: int) -> list[int]:
    """Ensemble sizes with rows: 1, 2, 4, ... below ``n_seeds``, and ``n_seeds``."""
    sizes = [1 << k for k in range(max(n_seeds, 1).bit_length())
             if (1 << k) < n_seeds]
    return sizes + [n_seeds]


class SeedEnsemble:
    """Mean outputs of the networks of the seeds trained so far, per predictor
    and evaluation step (Lee et al. 2020, Sec. 3.3: an ensemble of networks
    from independent initialisations predicts with their mean output).

    Running sums in float64, so memory stays that of one network's outputs
    per predictor and step. After the ``K``-th seed, for every ``K`` in
    :func:`ensemble_sizes`, :meth:`member_done` writes the ensemble's rows at
    every step: ``ensemble_<split>_loss`` / ``_accuracy`` and, against the NTK
    dynamics from ``f_0 = 0`` (the infinite-width mean over initialisations),
    ``ensemble_dist_ntk_mean``.
    """

    def __init__(self, n_seeds: int, eval_steps: list[int]):
        self.sizes = set(ensemble_sizes(n_seeds))
        self.eval_steps = eval_steps
        self.sums: dict[tuple[str, int, str], np.ndarray] = {}
        self.members = 0
        self.lrs: set[float] = set()

    def add(self, predictor: str, index: int,
            outputs: dict[str, np.ndarray]) -> None:
        """Adds one network's outputs (``{split: array}``) at step ``index``."""
        for split, fx in outputs.items():
            key = (predictor, index, split)
            fx = np.asarray(fx, np.float64)
            self.sums[key] = fx.copy() if key not in self.sums else (
                self.sums[key] + fx)

    def member_done(self, rows: RowWriter, evaluator: Evaluator, lr: float,
                    mean_reference: Callable[[], Optional[tuple]],
                    **tag) -> None:
        """Counts one more seed; writes the rows when the count is a size.

        ``mean_reference()`` returns the NTK dynamics from ``f_0 = 0`` at the
        evaluation steps (``(train, test)`` outputs with a leading step axis),
        or None; it is called only when rows are written.

        Members trained at different learning rates (``lr_kernel=empirical``
        gives each seed its own) share steps, not times: the rows then have
        no ``t`` and no ``ensemble_dist_ntk_mean`` (whose reference is at a
        time).
        """
        self.members += 1
        self.lrs.add(lr)
        size = self.members
        if size not in self.sizes:
            return
        one_lr = len(self.lrs) == 1
        reference = mean_reference() if one_lr else None
        predictors = sorted({p for p, _, _ in self.sums})
        for predictor in predictors:
            for index, step in enumerate(self.eval_steps):
                mean = {split: self.sums[(predictor, index, split)] / size
                        for split in ('train', 'test')}
                at = dict(step=step, predictor=predictor,
                          ensemble_size=size, **tag)
                if one_lr:
                    at['t'] = lr * step
                for metric, value in evaluator.values(mean).items():
                    rows.add(f'ensemble_{metric}', value, **at)
                if reference is not None:
                    for split, ref in zip(('train', 'test'), reference):
                        rows.add('ensemble_dist_ntk_mean',
                                 rms_distance(mean[split], ref[index]), split=split,
                                 **at)


def kernel_inf_rows(rows: RowWriter, evaluator: Evaluator, k_tt, k_st,
                     y_train, diag_reg: float, **params) -> None:
    """NNGP / NTK kernel regression at ``t = inf`` (Lee et al. 2020)."""
    for kernel in ('nngp', 'ntk'):
        pred = solve.predict_inf(k_tt[kernel], k_st[kernel], y_train, diag_reg,
                                 kernel)
        value = float(evaluator.loss(jnp.asarray(pred),
                                     jnp.asarray(evaluator.y['test'])))
        at = dict(kernel=kernel, diag_reg=diag_reg, t=math.inf, **params)
        rows.add('kernel_test_loss', value, **at)
        if evaluator.labels['test'] is not None:
            rows.add('kernel_test_accuracy',
                     solve.accuracy(pred, evaluator.labels['test']), **at)


def drift_part_rows(rows: RowWriter, kernel_t: np.ndarray,
                     kernel_0: np.ndarray, suffix: str, **columns) -> None:
    """Rows ``ntk_scale_change`` and ``ntk_shape_change`` (+ ``suffix``):
    the NTK's change split into a rescaling of ``Theta_0`` and the rest
    (:func:`ntkexp.ntk_drift.scale_and_shape_change`)."""
    scale, shape = ntk_drift.scale_and_shape_change(kernel_t, kernel_0)
    rows.add(f'ntk_scale_change{suffix}', scale, **columns)
    rows.add(f'ntk_shape_change{suffix}', shape, **columns)


def layer_kernels(layer_ntks: Callable, params, probe) -> list[np.ndarray]:
    """Each parameter leaf's part of the probe NTK, float64
    (:func:`ntkexp.ntk_drift.layer_ntk_fn`)."""
    return [np.asarray(k, np.float64) for k in layer_ntks(params, probe)]


def add_layer_rows(rows: RowWriter, metric: str, kernels: list[np.ndarray],
                    kernel_0: np.ndarray, layer_shapes: list[str],
                    **columns) -> None:
    """One ``metric`` row per parameter leaf (``layer``, ``layer_shape``):
    its kernel's component along ``kernel_0``
    (:func:`ntkexp.ntk_drift.along`)."""
    for i, (kernel, shape) in enumerate(zip(kernels, layer_shapes)):
        rows.add(metric, ntk_drift.along(kernel, kernel_0), layer=i,
                 layer_shape=shape, **columns)


def point_rows(rows: RowWriter, metric: str, values: np.ndarray,
                gamma: Optional[np.ndarray], **params) -> None:
    """One row per point and output: ``metric`` with ``index``, ``output``
    and, for inputs on the circle, their angle ``gamma`` (Jacot et al. 2018,
    Fig. 2: the network's test outputs and the training targets)."""
    for index in range(values.shape[0]):
        where = dict(index=index, **params)
        if gamma is not None:
            where['gamma'] = float(gamma[index])
        for c in range(values.shape[1]):
            rows.add(metric, values[index, c], output=c, **where)


def ensemble_rows(rows: RowWriter, kernel_fn, data, y_train, lr: float,
                   steps: int, dtype, gamma, percentiles: list[float],
                   **params) -> None:
    """The infinite-width Gaussian at the last step: mean, std, percentiles.

    ``nt.predict.gradient_descent_mse_ensemble`` (Jacot et al. 2018, Sec. 5
    and Fig. 2; Lee et al. 2019, eqs. 15-16): the distribution over
    initialisations of an infinitely wide network trained for ``steps`` steps
    of learning rate ``lr`` on the MSE loss. Rows ``ensemble_mean``,
    ``ensemble_std`` and ``ensemble_percentile`` (``percentile`` column,
    ``mean + z_q std``) per test point.
    """
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
    from scipy.stats import norm  # pylint: disable=g-import-not-at-top
    x_train = jnp.asarray(data.x_train, dtype)
    x_test = jnp.asarray(data.x_test, dtype)

    @jax.jit
    def ensemble(x_train, y_train, x_test):
        predict = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, x_train, y_train, learning_rate=lr)
        gaussian = predict(t=float(steps), x_test=x_test, get='ntk',
                           compute_cov=True)
        return gaussian.mean, gaussian.covariance

    mean, cov = ensemble(x_train, jnp.asarray(y_train, dtype), x_test)
    mean = np.asarray(mean, np.float64)
    std = np.sqrt(np.clip(np.diag(np.asarray(cov, np.float64)), 0, None))
    for index in range(mean.shape[0]):
        where = dict(index=index, predictor='infinite', **params)
        if gamma is not None:
            where['gamma'] = float(gamma[index])
        for c in range(mean.shape[1]):
            rows.add('ensemble_mean', mean[index, c], output=c, **where)
            rows.add('ensemble_std', std[index], output=c, **where)
            for q in percentiles:
                rows.add('ensemble_percentile',
                         mean[index, c] + norm.ppf(q / 100) * std[index],
                         output=c, percentile=q, **where)
