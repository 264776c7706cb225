"""Experiment ``finite_width``: finite networks trained at several widths.

Reproduces the finite-network side of

* Jacot et al. 2018, "Neural Tangent Kernel: Convergence and Generalization in
  Neural Networks": Fig. 1 (the NTK slice ``Theta(x0, x)`` on the circle at
  initialisation and after training moves for width 500 and hardly for 10000)
  and Fig. 2 (trained functions against the 10/50/90 percentiles of the
  infinite-width Gaussian);
* Lee et al. 2019, "Wide Neural Networks of Any Depth Evolve as Linear Models
  Under Gradient Descent": the trained network approaches its linearisation
  (``nt.linearize``) and the infinite-width NTK dynamics as the width grows;
* Lee et al. 2020, "Finite Versus Infinite Neural Networks: an Empirical
  Study": finite networks (NTK or standard parameterisation) against the
  infinite-width kernel predictors;
* Li, Luo & Yip 2020, "Towards an Understanding of Residual Networks Using
  Neural Tangent Hierarchy" (and Huang & Yau 2020): the relative change of the
  empirical NTK during training shrinks with the width (about ``1/sqrt(n)``)
  for fully connected and residual networks.

For every width in ``experiment.widths`` and seed in ``experiment.seeds`` the
network is trained by optax (full-batch GD, mini-batch SGD or momentum; MSE or
cross-entropy; :mod:`ntkexp.training`) and at every evaluation step the run
writes rows (``step``, ``t = lr * step``, ``width``, ``seed`` columns):

* ``train_loss``, ``test_loss``, ``train_accuracy``, ``test_accuracy`` (the
  last two for classification) for each ``predictor``: ``net`` (the finite
  network), ``linearized`` (``nt.linearize`` around the initial parameters,
  trained by the same optimiser on the same batches), ``ntk`` (the
  infinite-width NTK dynamics ``nt.predict`` started from the *same* initial
  function ``f_0`` as the network: Lee et al. 2019, eqs. 9-10) and
  ``ntk_mean`` (the same dynamics from ``f_0 = 0``: the mean over
  initialisations for MSE, i.e. kernel regression at time ``t``); with
  ``experiment.centered``, ``net_centered``: the centred network
  ``f(theta, x) - f(theta_0, x)``, trained as such by the same optimiser on
  the same batches from ``theta_0`` (Lee et al. 2020, Sec. 3: centring
  removes the random initial function); ``experiment.center_scale=c``
  subtracts ``c f(theta_0, x)`` instead, i.e. trains the network on
  ``y + c f_0`` (``c = 0``: the network itself);
* ``dist_ntk``, ``dist_linearized``, ``dist_ntk_mean``: root mean square
  distance between the network's outputs and each reference (``split`` =
  train / test);
* ``ntk_drift``: ``||Theta_t - Theta_0||_F / ||Theta_0||_F`` of the empirical
  NTK on a probe set (the first ``probe_size`` training inputs);
  ``ntk_drift_centered`` (with ``experiment.centered``): the same for the
  centred network, whose NTK is the network's at its own parameters
  (``f(theta_0, x)`` does not depend on ``theta``) but which starts from the
  zero function, so that a large initial output does not make it move;
  ``ntk_scale_change`` and ``ntk_shape_change`` (``_centered``: the centred
  network's): that change split as ``Theta_t - Theta_0 = a Theta_0 + E``
  with ``E`` orthogonal to ``Theta_0``, i.e. the signed change ``a`` of the
  kernel's scale and ``||E||_F / ||Theta_0||_F`` of its shape
  (``ntk_drift**2`` is the sum of their squares;
  :func:`ntkexp.ntk_drift.scale_and_shape_change`);
* ``ntk_layer_share`` and ``ntk_layer_scale_change`` (``_centered``) with
  ``experiment.ntk_layers``, per parameter leaf (``layer``: its index in
  ``jax.tree_util.tree_leaves`` order, ``layer_shape``): the leaf's part
  ``Theta_l`` of the probe NTK (:func:`ntkexp.ntk_drift.layer_ntk_fn`) along
  ``Theta_0``, ``<Theta_l, Theta_0>_F / ||Theta_0||_F^2`` at initialisation
  (they add up to 1) and of its change at each step (they add up to
  ``ntk_scale_change``): which layers' kernels grow or shrink;
* ``nth_drift``, ``nth_residual``, ``nth_cosine`` (with ``experiment.nth``):
  the Neural Tangent Hierarchy's first correction (Huang & Yau 2020,
  with ``K^(3)`` frozen at initialisation and the residuals of the NTK
  dynamics), ``dTheta = D Theta(theta_0)[theta_lin(t) - theta_0]``
  (:func:`ntkexp.ntk_drift.ntk_derivative`) on the probe set:
  ``||dTheta|| / ||Theta_0||``, ``||Theta_t - Theta_0 - dTheta|| /
  ||Theta_t - Theta_0||`` (how much of the NTK's actual change it misses) and
  the cosine between ``dTheta`` and ``Theta_t - Theta_0``; steps after 0;
  ``taylor1_residual`` and ``taylor2_residual``: the same residual of the
  NTK's first- and second-order Taylor expansion along the network's actual
  displacement ``theta_t - theta_0`` (:func:`ntkexp.ntk_drift.ntk_taylor_terms`:
  the dNTK and ddNTK terms, both ``O(1/n)``, Dyer & Gur-Ari 2020);
  ``nth2_drift`` and ``nth2_residual`` (full-batch training): the same for
  the hierarchy truncated at ``K^(4)``, from initialisation alone: the
  training and the NTK to second order in the displacement
  (:func:`ntkexp.ntk_drift.second_order_gd`); all of these from
  :mod:`ntkexp.experiments.hierarchy`;
* ``weight_change``: ``||theta_t - theta_0|| / ||theta_0||``
  (``weight_change_centered``: the centred network's);
* ``ntk_slice`` (with ``experiment.slice``): ``Theta(x0, x)`` for ``x`` on the
  unit circle at angle ``gamma``, at the ``slice_steps``; the infinite-width
  slice has ``predictor=infinite``;
* ``function`` (with ``experiment.functions``): the trained network's outputs
  at every test point (``index``, ``gamma`` for 2-D inputs) at the last step;
  ``ensemble_mean`` / ``ensemble_std``: the infinite-width Gaussian of
  ``nt.predict.gradient_descent_mse_ensemble`` at the same time;
* ``ensemble_percentile`` (``percentile`` column): the percentiles
  ``experiment.percentiles`` of that Gaussian; ``train_target``: the training
  targets (``gamma`` for 2-D inputs);
* ``kernel_test_accuracy`` / ``kernel_test_loss`` (with
  ``experiment.kernel_inf``): NNGP and NTK kernel regression at ``t = inf``
  (``kernel`` column), the infinite-width side of Lee et al. 2020;
* ``ensemble_test_loss``, ``ensemble_test_accuracy``, ``ensemble_train_loss``,
  ``ensemble_train_accuracy`` and ``ensemble_dist_ntk_mean`` (with
  ``experiment.ensemble``; ``ensemble_size`` column, ``predictor`` ``net`` or
  ``net_centered``): the ensemble of the first ``K`` seeds' networks, i.e.
  their mean output, for ``K`` = 1, 2, 4, ... and all of
  ``experiment.seeds`` (Lee et al. 2020, Sec. 3.3 and Fig. 1 "+Ens":
  ensembling removes the variance of the random initial function, and the
  ensemble approaches the NTK dynamics from ``f_0 = 0``, ``ntk_mean``, whose
  RMS distance ``ensemble_dist_ntk_mean`` gives);
* ``lr``, ``max_lr``, ``n_params``, ``train_seconds`` once per width and seed.

Regularisation: ``experiment.l2`` adds ``l2 / 2 ||theta - c||^2`` to every
trained predictor's objective, with ``c = 0`` (``l2_center=zero``, weight
decay) or ``c = theta_0`` (``init``, L2 towards the initialisation, under
which the linearised network's gradient flow ends at kernel ridge regression
from ``f_0`` with ridge ``l2 * y.size``; Lee et al. 2020, Sec. 3). The NTK
references then follow that regularised flow (:func:`l2_to_init_flow`), and
``max_lr`` includes the penalty's curvature.

Time convention: the loss is ``nt.predict``'s, so ``s`` steps of full-batch GD
(or SGD, in expectation) with learning rate ``lr`` are compared with the
kernel gradient flow at time ``t = lr * s``; with momentum the reference is
``nt.predict.gradient_descent(..., momentum)`` at ``s`` steps. The references
are continuous-time flows, so a discretisation error of order ``lr`` remains
in ``dist_ntk`` however wide the network (small ``lr_fraction`` shrinks it).

Precision: the finite networks train in ``experiment.train_dtype`` (float32
runs with JAX's x64 mode off); the infinite-width kernels, the references and
the solves use ``precision`` (float64 by default).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ntkexp import ntk_drift
from ntkexp import solve
from ntkexp import training
from ntkexp.empirical_ntk import EmpiricalNTK
from ntkexp.models import count_params
from ntkexp.experiments import hierarchy
from ntkexp.experiments.options import as_list
from ntkexp.records import RowWriter

log = logging.getLogger(__name__)

REFERENCES = ('ntk', 'ntk_mean', 'linearized')
LR_KERNELS = ('analytic', 'empirical', 'empirical_outputs')
L2_CENTERS = ('zero', 'init')
DTYPES = ('float32', 'float64')


# ----------------------------------------------------------------------------
# Config resolution and validation.


def _widths_setting(cfg: DictConfig) -> Optional[list[Any]]:
    """The widths of this run's model as a list, or None (= ``[model.width]``).

    ``experiment.model_widths`` (a mapping from the architecture, i.e. the
    model's function name: ``fc``, ``cnn`` for ``model=cnn_vec``, ``resnet``,
    ... to its widths) comes first, so that one sweep ``model=fc,cnn_vec``
    trains each architecture at its own widths (e.g. ``{fc: [512], cnn:
    [16]}``); an architecture missing from it uses ``experiment.widths``.
    """
    from ntkexp.runner import target_name  # pylint: disable=g-import-not-at-top
    by_model = cfg.experiment.get('model_widths', None)
    if by_model is not None:
        name = target_name(cfg.model)
        if name in by_model:
            return as_list(by_model[name], None)
    return as_list(cfg.experiment.get('widths', None), None)


def widths_of(cfg: DictConfig) -> list[int]:
    """``experiment.widths`` (for this model), or ``[model.width]``."""
    widths = _widths_setting(cfg)
    if widths is None:
        widths = [cfg.model.get('width', None)]
    return [int(w) for w in widths]


def seeds_of(cfg: DictConfig) -> list[int]:
    """``experiment.seeds``, or ``[seed]`` when it is null."""
    seeds = as_list(cfg.experiment.get('seeds', None), None)
    return [int(s) for s in (seeds if seeds is not None else [cfg.seed])]


def references_of(cfg: DictConfig, given: Optional[set[str]] = None) -> list[str]:
    """``experiment.references`` as this run computes them.

    Under weight decay towards zero (``l2 > 0``, ``l2_center=zero``) the
    kernel dynamics ``ntk`` / ``ntk_mean`` have no kernel form: they are left
    out when they come from a config file, so ``experiment.l2=0.01`` alone
    runs; named on the command line (``given``, default: this job's
    overrides) they stay, and :func:`validate` refuses them with the fix.
    """
    from ntkexp.runner import command_line_keys  # pylint: disable=g-import-not-at-top
    exp = cfg.experiment
    references = [str(r) for r in as_list(exp.get('references', None))]
    decay = bool(exp.get('l2', 0.0)) and exp.get('l2_center', 'zero') != 'init'
    given = command_line_keys() if given is None else given
    if decay and 'experiment.references' not in given:
        references = [r for r in references if r not in ('ntk', 'ntk_mean')]
    return references


def eval_steps_of(exp: DictConfig) -> list[int]:
    """Sorted evaluation steps: 0, every ``eval_every`` and the last step.

    ``experiment.eval_steps`` (a list) replaces the regular grid; 0 and
    ``steps`` are always included.
    """
    steps = int(exp.steps)
    listed = as_list(exp.get('eval_steps', None), None)
    if listed is not None:
        grid = {int(s) for s in listed}
    else:
        every = int(exp.get('eval_every', None) or steps or 1)
        grid = set(range(0, steps + 1, every))
    grid |= {0, steps}
    return sorted(s for s in grid if 0 <= s <= steps)


def slice_steps_of(exp: DictConfig) -> list[int]:
    """Steps at which the NTK slice is recorded (default: first and last)."""
    listed = as_list(exp.get('slice_steps', None), None)
    if listed is None:
        return [0, int(exp.steps)]
    return sorted({int(s) for s in listed})


def validate(cfg: DictConfig) -> None:
    """Checks the ``experiment`` options (called by :func:`ntkexp.runner.validate`).

    Raises:
        ntkexp.runner.ConfigError: one line naming the bad value and the fix.
    """
    from ntkexp.runner import ConfigError  # pylint: disable=g-import-not-at-top

    def check(condition, message):
        if not condition:
            raise ConfigError(message)

    exp = cfg.experiment
    widths = _widths_setting(cfg)
    # A run trains the lists; a scalar given on the command line beside them
    # would be ignored (a sweep over it would repeat one run).
    from ntkexp.runner import command_line_keys, target_name  # pylint: disable=g-import-not-at-top
    given = command_line_keys()
    seeds = as_list(exp.get('seeds', None), None)
    check('seed' not in given or seeds is None,
          f'seed={cfg.get("seed")} would be ignored: experiment={exp.name} trains '
          f'experiment.seeds={list(seeds or [])}; give experiment.seeds=[{cfg.get("seed")}] '
          'instead, or add experiment.seeds=null to use seed')
    check('model.width' not in given or widths is None,
          f'model.width={cfg.model.get("width")} would be ignored: experiment='
          f'{exp.name} trains the widths {list(widths or [])} '
          '(experiment.widths / experiment.model_widths); give '
          f'experiment.widths=[{cfg.model.get("width")}] instead, or add '
          'experiment.widths=null experiment.model_widths=null to use model.width')
    by_model = exp.get('model_widths', None) or {}
    name = target_name(cfg.model)
    check('experiment.widths' not in given or 'experiment.model_widths' in given
          or name not in by_model,
          f'experiment.widths={as_list(exp.get("widths"), None)} would be ignored: '
          f'experiment={exp.name} trains experiment.model_widths.{name}='
          f'{list(as_list(by_model.get(name), []))} for this model; add '
          'experiment.model_widths=null to use experiment.widths (or set '
          f'experiment.model_widths.{name}=[...])')
    where = 'experiment.widths has'
    if widths is None:
        check(cfg.model.get('width', None) is not None,
              'experiment.widths is null and the model has no width; set '
              'experiment.widths=[64,256]')
        widths, where = [cfg.model.width], 'model.width is'
    for w in widths:
        check(isinstance(w, int) and not isinstance(w, bool) and w >= 1,
              f'{where} {w!r}; widths must be integers >= 1 (e.g. '
              + ('model.width=64)' if where.startswith('model')
                 else 'experiment.widths=[64,256])'))
    for s in as_list(exp.get('seeds', None)):
        check(isinstance(s, int) and not isinstance(s, bool),
              f'experiment.seeds has {s!r}; seeds must be integers '
              '(e.g. experiment.seeds=[0,1,2])')
    steps = exp.get('steps', None)
    check(isinstance(steps, int) and steps >= 0,
          f'experiment.steps={steps!r} must be an integer >= 0')
    every = exp.get('eval_every', None)
    check(every is None or (isinstance(every, int) and every >= 1),
          f'experiment.eval_every={every!r} must be an integer >= 1 or null')
    for s in as_list(exp.get('eval_steps', None)):
        check(isinstance(s, int) and 0 <= s <= steps,
              f'experiment.eval_steps has {s!r}; use integers in [0, '
              f'experiment.steps={steps}]')
    try:
        ntk_drift.implementation_code(exp.get('ntk_implementation', 1))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    optimizer = exp.get('optimizer', 'gd')
    check(optimizer in training.OPTIMIZERS,
          f'experiment.optimizer={optimizer!r} is invalid; use one of '
          f"{', '.join(training.OPTIMIZERS)}")
    batch = exp.get('batch_size', None)
    check(batch is None or (isinstance(batch, int) and batch >= 1),
          f'experiment.batch_size={batch!r} must be an integer >= 1 or null '
          '(full batch)')
    check(not (optimizer == 'gd' and batch is not None),
          'experiment.optimizer=gd is full-batch; use experiment.optimizer=sgd '
          'for mini-batches or experiment.batch_size=null')
    momentum = exp.get('momentum', 0.9)
    check(optimizer != 'momentum' or (momentum is not None and
                                      0 <= float(momentum) < 1),
          f'experiment.momentum={momentum!r} must be in [0, 1)')
    loss = exp.get('loss', 'mse')
    check(loss in training.LOSSES,
          f"experiment.loss={loss!r} is invalid; use one of "
          f"{', '.join(training.LOSSES)}")
    lr, fraction = exp.get('lr', None), exp.get('lr_fraction', None)
    check(fraction is not None or (lr is not None and float(lr) > 0),
          f'experiment.lr={lr!r} must be > 0 (or set experiment.lr_fraction)')
    check(fraction is None or float(fraction) > 0,
          f'experiment.lr_fraction={fraction!r} must be > 0 (e.g. 0.5 of '
          'nt.predict.max_learning_rate) or null')
    lr_kernel = exp.get('lr_kernel', 'analytic')
    check(lr_kernel in LR_KERNELS,
          f'experiment.lr_kernel={lr_kernel!r} is invalid; use one of '
          f"{', '.join(LR_KERNELS)}")
    references = as_list(exp.get('references', None))
    bad = sorted(set(references) - set(REFERENCES))
    check(not bad, f'experiment.references has {bad}; choose from '
          f'{list(REFERENCES)}')
    probe = exp.get('probe_size', 0)
    check(isinstance(probe, int) and probe >= 0,
          f'experiment.probe_size={probe!r} must be an integer >= 0 (0 = no '
          'NTK drift)')
    nth = exp.get('nth', False)
    check(isinstance(nth, bool),
          f'experiment.nth={nth!r} must be true or false')
    check(not nth or (probe and 'linearized' in references),
          'experiment.nth compares the NTK change on the probe set with the '
          'hierarchy along the linearised network; give experiment.probe_size '
          f'> 0 (now {probe!r}) and linearized in experiment.references (now '
          f'{list(references)}), e.g. experiment=nth')
    dtype = exp.get('train_dtype', None)
    check(dtype is None or dtype in DTYPES,
          f'experiment.train_dtype={dtype!r} is invalid; use float32, float64 '
          'or null (= precision)')
    slice_cfg = exp.get('slice', None)
    if slice_cfg is not None:
        x0 = as_list(slice_cfg.get('x0', None), None)
        check(x0 is not None and len(x0) == 2,
              'experiment.slice.x0 must be a 2-D point, e.g. [1.0, 0.0]')
        check(int(slice_cfg.get('points', 0)) >= 2,
              'experiment.slice.points must be >= 2')
    for q in as_list(exp.get('percentiles', None)):
        check(0 < float(q) < 100,
              f'experiment.percentiles has {q!r}; use values in (0, 100)')
    check(not (exp.get('functions', False) and loss != 'mse'),
          'experiment.functions compares with the infinite-width Gaussian of '
          'the MSE loss; use experiment.loss=mse')
    reg = exp.get('kernel_diag_reg', 0.0)
    check(reg is not None and float(reg) >= 0,
          f'experiment.kernel_diag_reg={reg!r} must be >= 0')
    l2 = exp.get('l2', 0.0)
    check(isinstance(l2, (int, float)) and not isinstance(l2, bool) and l2 >= 0,
          f'experiment.l2={l2!r} must be a number >= 0 (the coefficient of '
          'l2/2 ||theta - center||^2; 0 = none)')
    center = exp.get('l2_center', 'zero')
    check(center in L2_CENTERS,
          f'experiment.l2_center={center!r} is invalid; use zero (weight '
          'decay) or init (L2 towards the initialisation)')
    infinite = sorted({'ntk', 'ntk_mean'} & set(references_of(cfg, given)))
    if isinstance(l2, (int, float)) and l2 and infinite:
        check(center == 'init',
              f'experiment.references {infinite} are kernel dynamics, which '
              'weight decay towards zero has no kernel form for; use '
              'experiment.l2_center=init (L2 towards the initialisation) or '
              'experiment.references=[linearized]')
        check(loss == 'mse' and optimizer != 'momentum',
              f'experiment.references {infinite} with experiment.l2 have a '
              'closed form for the MSE loss and (S)GD only; use '
              'experiment.loss=mse experiment.optimizer=gd, or '
              'experiment.references=[linearized]')
    layers = exp.get('ntk_layers', False)
    check(isinstance(layers, bool),
          f'experiment.ntk_layers={layers!r} must be true or false')
    check(not layers or (isinstance(probe, int) and probe > 0),
          'experiment.ntk_layers splits the NTK on the probe set by parameter '
          f'leaf; give experiment.probe_size > 0 (now {probe!r})')
    center_scale = exp.get('center_scale', 1.0)
    check(isinstance(center_scale, (int, float))
          and not isinstance(center_scale, bool),
          f'experiment.center_scale={center_scale!r} must be a number (the '
          'centred net is f(theta, x) - center_scale f(theta_0, x); 1 = Lee et '
          'al. 2020)')
    check(center_scale == 1.0 or exp.get('centered', False),
          f'experiment.center_scale={center_scale!r} sets the centred net, '
          'which this run does not train; add experiment.centered=true')
    ensemble = exp.get('ensemble', False)
    check(isinstance(ensemble, bool),
          f'experiment.ensemble={ensemble!r} must be true or false')
    check(not ensemble or len(seeds_of(cfg)) >= 2,
          'experiment.ensemble averages the networks of the seeds one run '
          f'trains, and this run trains only seed {seeds_of(cfg)}; give '
          'experiment.seeds=[0,1,2,3] (a sweep -m seed=... runs each seed '
          'apart and cannot ensemble them)')


# ----------------------------------------------------------------------------
# Helpers.


def _model_cfg(cfg: DictConfig, width: int) -> DictConfig:
    """``cfg`` with ``model.width`` replaced."""
    new = cfg.copy()
    OmegaConf.update(new, 'model.width', int(width), merge=False)
    return new


def _apply_batched(apply_fn: Callable, params, x, batch: int = 1024):
    """``apply_fn(params, x)`` in chunks of ``batch`` inputs, as float64 numpy."""
    outs = [np.asarray(apply_fn(params, x[i:i + batch]), np.float64)
            for i in range(0, len(x), batch)]
    return np.concatenate(outs, axis=0)


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _gamma(x: np.ndarray) -> Optional[np.ndarray]:
    """Angle of 2-D inputs (the circle of Jacot et al. 2018), else None."""
    flat = np.asarray(x).reshape(len(x), -1)
    if flat.shape[1] != 2:
        return None
    return np.arctan2(flat[:, 1], flat[:, 0])


class _Evaluator:
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


def l2_to_init_flow(k_train_train: np.ndarray, y_train: np.ndarray,
                    lr: float, l2: float) -> Callable:
    """Kernel gradient flow of the MSE loss with L2 towards the initialisation.

    A model linear in its parameters with NTK ``Theta``, trained on
    ``||f - y||^2 / (2 N)`` (``N = y.size``) plus ``l2 / 2 ||theta -
    theta_0||^2`` by gradient flow for the time ``tau = lr * steps``, moves in
    function space as ``df/dtau = -Theta (f - y) / N - l2 (f - f_0)`` on the
    training set (and likewise on test points, through ``Theta_test,train``).
    With ``Theta = V diag(s) V^T`` and the fixed point ``f* = f_0 + Theta
    (Theta + l2 N I)^-1 (y - f_0)`` (kernel ridge regression from ``f_0``
    with ridge ``l2 N``):

    * ``f_train(tau) = f* + V exp(-(s / N + l2) tau) V^T (f_0 - f*)``;
    * ``f_test(tau) = f_0,test + Theta_test,train [(Theta + l2 N)^-1 (y -
      f_0) (1 - exp(-l2 tau)) + V diag(exp(-l2 tau) (1 - exp(-s tau / N)) /
      s) V^T (f* - f_0)]``.

    At ``l2 = 0`` this is ``nt.predict.gradient_descent_mse``. Exact for the
    linearised network (``nt.linearize``), and the infinite-width limit of a
    network trained with L2 to init (Lee et al. 2020, Sec. 3).

    Returns:
        ``predict(steps, fx_train_0, fx_test_0, k_test_train)`` as
        :func:`_reference_fn`'s, in float64.
    """
    k = np.asarray(k_train_train, np.float64)
    y = np.asarray(y_train, np.float64)
    n_out = y.size
    s, v = np.linalg.eigh(k)
    s = np.clip(s, 0.0, None)
    l2 = float(l2)

    rate = s / n_out
    positive = rate > 0

    def predict(steps, fx_train_0, fx_test_0, k_test_train):
        f0 = np.asarray(fx_train_0, np.float64)
        f0_test = np.asarray(fx_test_0, np.float64)
        k_st = np.asarray(k_test_train, np.float64)
        # (Theta + l2 N)^-1 (y - f_0) in the eigenbasis; f* - f_0 = Theta of it.
        ridge = v @ ((v.T @ (y - f0)) / (s + l2 * n_out)[:, None])
        f_star = f0 + k @ ridge
        coeff = v.T @ (f0 - f_star)  # modes of the train residual
        trains, tests = [], []
        for tau in lr * np.asarray(steps, np.float64):
            decay = np.exp(-(rate + l2) * tau)
            trains.append(f_star + v @ (decay[:, None] * coeff))
            # exp(-l2 tau) (1 - exp(-s tau / N)) / s, its limit tau/N at s=0.
            grow = np.full_like(s, tau / n_out)
            grow[positive] = -np.expm1(-rate[positive] * tau) / s[positive]
            grow = np.exp(-l2 * tau) * grow
            moved = (-np.expm1(-l2 * tau)) * ridge - v @ (grow[:, None] * coeff)
            tests.append(f0_test + k_st @ moved)
        return np.stack(trains), np.stack(tests)

    return predict


def _reference_fn(loss_name: str, optimizer: str, momentum: float,
                  k_train_train: np.ndarray, y_train: np.ndarray, lr: float,
                  loss: Callable, l2: float = 0.0) -> Callable:
    """The infinite-width function-space dynamics of the training run.

    Returns ``predict(steps, fx_train_0, fx_test_0, k_test_train) ->
    (fx_train, fx_test)`` with a leading axis over ``steps``: the closed form
    ``nt.predict.gradient_descent_mse`` for MSE with GD / SGD, else the ODE of
    ``nt.predict.gradient_descent`` (cross-entropy, momentum); with ``l2 >
    0`` (L2 towards the initialisation; MSE, GD / SGD only, which
    :func:`validate` checks) :func:`l2_to_init_flow`.
    """
    import neural_tangents as nt  # pylint: disable=g-import-not-at-top
    if l2:
        return l2_to_init_flow(k_train_train, y_train, lr, l2)
    k = jnp.asarray(k_train_train)
    y = jnp.asarray(y_train, k.dtype)
    if loss_name == 'mse' and optimizer != 'momentum':
        fn = nt.predict.gradient_descent_mse(k, y, learning_rate=lr)
    else:
        fn = nt.predict.gradient_descent(
            loss, k, y, learning_rate=lr,
            momentum=momentum if optimizer == 'momentum' else None)

    def predict(steps, fx_train_0, fx_test_0, k_test_train):
        t = jnp.asarray(np.asarray(steps, np.float64), k.dtype)
        fx_train, fx_test = fn(t, jnp.asarray(fx_train_0, k.dtype),
                               jnp.asarray(fx_test_0, k.dtype),
                               jnp.asarray(k_test_train, k.dtype))
        return np.asarray(fx_train, np.float64), np.asarray(fx_test, np.float64)

    return predict


def _kernels(cfg: DictConfig, kernel_fn, x_train, x_test, get):
    """Analytic train-train and test-train kernels via the cached engine."""
    from ntkexp.experiments.kernel_regression import compute_kernels  # pylint: disable=g-import-not-at-top
    k_tt, k_st, seconds = compute_kernels(cfg, kernel_fn, x_train, x_test, get)
    return k_tt, k_st, seconds


# ----------------------------------------------------------------------------
# The experiment.


def run(cfg: DictConfig, run_dir: Path, rows: RowWriter) -> pd.DataFrame:
    """Trains the model at every width and seed and writes the rows above.

    Args:
        cfg: the composed config (see ``conf/experiment/finite_width.yaml``).
        run_dir: the run directory (unused: everything goes through ``rows``).
        rows: the run's row writer.

    Returns:
        A summary: per width and predictor, the mean over seeds at the last
        step of the test loss / accuracy, the distances and the NTK drift.
    """
    del run_dir
    exp = cfg.experiment
    kernel_dtype = np.float64 if cfg.get('precision') == 'float64' else np.float32
    train_dtype = jnp.dtype(exp.get('train_dtype', None) or
                            ('float64' if kernel_dtype == np.float64 else 'float32'))
    if train_dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ValueError('experiment.train_dtype=float64 needs precision=float64')

    def net_precision():
        """JAX's x64 mode for the finite networks: off for float32 training.

        With x64 on, neural-tangents' layers multiply float32 activations by
        float64 NumPy scales and silently compute in float64 (and its Conv
        then fails on mixed dtypes); kernels and references stay in the
        ambient ``precision``.
        """
        return jax.enable_x64(train_dtype == jnp.float64)

    data = instantiate(cfg.dataset)
    rows.fill_sizes(data)  # null n_train / n_test: the sizes loaded
    loss_name = str(exp.get('loss', 'mse'))
    y_train, y_test = data.y_train, data.y_test
    if loss_name == 'xent':
        if data.labels_train is None:
            raise ValueError('experiment.loss=xent needs a classification '
                             'dataset; use experiment.loss=mse')
        k = int(data.n_classes)
        y_train = np.eye(k)[data.labels_train]
        y_test = np.eye(k)[data.labels_test]
    y_train = np.asarray(y_train, np.float64)
    y_test = np.asarray(y_test, np.float64)
    out_dim = y_train.shape[1]
    x_train_k = np.asarray(data.x_train, kernel_dtype)
    x_test_k = np.asarray(data.x_test, kernel_dtype)
    x_train = jnp.asarray(data.x_train, train_dtype)
    x_test = jnp.asarray(data.x_test, train_dtype)
    y_train_t = jnp.asarray(y_train, train_dtype)
    loss = training.get_loss(loss_name)
    evaluator = _Evaluator(loss, y_train, y_test, data.labels_train,
                           data.labels_test)

    optimizer_name = str(exp.get('optimizer', 'gd'))
    momentum = float(exp.get('momentum', 0.9) or 0.0)
    opt_momentum = momentum if optimizer_name == 'momentum' else 0.0
    batch_size = exp.get('batch_size', None)
    references = references_of(cfg)
    dropped = [r for r in as_list(exp.get('references', None))
               if r not in references]
    if dropped:
        log.warning('experiment.l2=%s decays the weights towards zero, under '
                    'which the kernel dynamics %s have no kernel form: left out '
                    '(experiment.l2_center=init keeps them)', exp.l2, dropped)
    lr_kernel = str(exp.get('lr_kernel', 'analytic'))
    lr_fraction = exp.get('lr_fraction', None)
    eval_steps = eval_steps_of(exp)
    probe_size = min(int(exp.get('probe_size', 0)), len(data.x_train))
    slice_cfg = exp.get('slice', None)
    slice_steps = set(slice_steps_of(exp)) if slice_cfg is not None else set()
    functions = bool(exp.get('functions', False))
    kernel_inf = bool(exp.get('kernel_inf', False))
    centered = bool(exp.get('centered', False))
    ntk_layers = bool(exp.get('ntk_layers', False)) and probe_size > 0
    ensemble = bool(exp.get('ensemble', False))
    nth = bool(exp.get('nth', False))
    l2 = float(exp.get('l2', 0.0) or 0.0)
    # The hierarchy to K^(4) (ntk_drift.second_order_gd) expands full-batch
    # training.
    nth2 = nth and hierarchy.second_order_applies(batch_size, len(data.x_train))
    l2_to_init = bool(l2) and str(exp.get('l2_center', 'zero')) == 'init'
    gamma_test = _gamma(data.x_test)

    need_ntk = bool({'ntk', 'ntk_mean'} & set(references)) or kernel_inf or (
        lr_fraction is not None and lr_kernel == 'analytic')
    get = ('nngp', 'ntk') if kernel_inf else ('ntk',)
    width_free = str(cfg.model.get('parameterization', 'ntk')) == 'ntk'
    cached_kernels = None

    if slice_cfg is not None:
        x0 = np.asarray([as_list(slice_cfg.x0, None)], np.float64)
        gammas = np.linspace(-np.pi, np.pi, int(slice_cfg.points))
        x_circle = np.stack([np.cos(gammas), np.sin(gammas)], axis=1)
        shape = tuple(data.x_train.shape[1:])
        if int(np.prod(shape)) != 2:
            raise ValueError('experiment.slice needs 2-D inputs (e.g. '
                             'dataset=circle or dataset=gaussian with d=2); '
                             f'this dataset has inputs of shape {shape}')
        x0 = x0.reshape((1,) + shape)
        x_circle = x_circle.reshape((-1,) + shape)

    summary = []
    for width in widths_of(cfg):
        wcfg = _model_cfg(cfg, width)
        init_fn, apply_fn, kernel_fn = instantiate(wcfg.model, out_dim=out_dim)
        apply_jit = jax.jit(apply_fn)
        k_tt = k_st = None
        if need_ntk:
            if width_free and cached_kernels is not None:
                k_tt, k_st = cached_kernels
            else:
                k_tt, k_st, seconds = _kernels(wcfg, kernel_fn, x_train_k,
                                               x_test_k, get)
                rows.add('kernel_seconds', seconds, width=width)
                cached_kernels = (k_tt, k_st)
        if kernel_inf:
            _kernel_inf_rows(rows, evaluator, k_tt, k_st, y_train,
                             float(exp.get('kernel_diag_reg', 0.0) or 0.0),
                             width=width)
        if slice_cfg is not None:
            inf_slice = np.asarray(jax.jit(kernel_fn, static_argnames='get')(
                jnp.asarray(x0, kernel_dtype), jnp.asarray(x_circle, kernel_dtype),
                get='ntk'))[0]
            for g, v in zip(gammas, inf_slice):
                rows.add('ntk_slice', v, gamma=float(g), predictor='infinite',
                         width=width)
        trainers = {}
        reference_fns = {}  # the kernel dynamics per lr, shared by the seeds

        def reference(lr):
            """This width's infinite-width dynamics at ``lr``
            (:func:`_reference_fn`), built once."""
            if lr not in reference_fns:
                reference_fns[lr] = _reference_fn(
                    loss_name, optimizer_name, momentum, k_tt['ntk'], y_train,
                    lr, loss, l2)
            return reference_fns[lr]

        f_lin = training.linearized_apply_fn(apply_fn)
        f_lin_jit = jax.jit(f_lin)
        f_centered = training.centered_apply_fn(
            apply_fn, float(exp.get('center_scale', 1.0)))
        f_centered_jit = jax.jit(f_centered)
        slice_fn = jax.jit(functools.partial(ntk_drift.ntk_slice, apply_fn))
        nth_probe = (hierarchy.HierarchyProbe(apply_fn, nth2, loss, opt_momentum,
                                              l2, l2_to_init) if nth else None)
        # Blocks sized from kernel.memory_gb: lr_kernel=empirical takes the
        # whole training set's NTK.
        ntk_emp = (EmpiricalNTK.for_run(
            cfg, apply_fn, ntk_drift.implementation_code(
                exp.get('ntk_implementation', 1)))
            if probe_size or lr_kernel == 'empirical' else None)
        layer_ntks = (ntk_drift.layer_ntk_fn(apply_fn, ntk_drift.implementation_code(
            exp.get('ntk_implementation', 1))) if ntk_layers else None)

        members = (_Ensemble(len(seeds_of(cfg)), eval_steps) if ensemble
                   else None)
        for seed in seeds_of(cfg):
            start = time.time()
            tag = dict(width=width, seed=seed)
            with net_precision():
                key = jax.random.PRNGKey(seed)
                _, params0 = init_fn(key, (-1,) + tuple(data.x_train.shape[1:]))
                params0 = training.cast(params0, train_dtype)
                kernel_for_lr = top_for_lr = None
                if lr_kernel == 'empirical' and lr_fraction is not None:
                    kernel_for_lr = np.asarray(ntk_emp(x_train, None, params0))
                if lr_kernel == 'empirical_outputs' and lr_fraction is not None:
                    top_for_lr = training.ntk_top_eigenvalue(apply_fn, params0,
                                                             x_train)
                f0_train = _apply_batched(apply_jit, params0, x_train)
                f0_test = _apply_batched(apply_jit, params0, x_test)
                probe = x_train[:probe_size]
                probe_k0 = (np.asarray(ntk_emp(probe, None, params0))
                            if probe_size else None)
                norm0 = float(training.tree_norm(params0))
                batch_key = jax.random.fold_in(key, 1)
                layers0 = (_layer_kernels(layer_ntks, params0, probe)
                           if layer_ntks is not None else None)
            rows.add('n_params', count_params(params0), **tag)
            if layers0 is not None:
                layer_shapes = [ntk_drift.shape_text(leaf.shape) for leaf
                                in jax.tree_util.tree_leaves(params0)]
                _add_layer_rows(rows, 'ntk_layer_share', layers0, probe_k0,
                                layer_shapes, probe_size=probe_size, **tag)
            if kernel_for_lr is None and k_tt is not None:
                kernel_for_lr = k_tt['ntk']
            lr, max_lr = training.resolve_learning_rate(
                exp.get('lr', None), lr_fraction, kernel_for_lr, y_train.size,
                opt_momentum, l2, top_for_lr)
            rows.add('lr', lr, **tag)
            if max_lr is not None:
                rows.add('max_lr', max_lr, kernel=(
                    lr_kernel if lr_fraction is not None else 'analytic'), **tag)

            if lr not in trainers:  # one compiled loop per width and lr
                optimizer = training.make_optimizer(optimizer_name, lr, momentum)
                penalty = dict(l2=l2, center=params0 if l2_to_init else None)
                trainers[lr] = (
                    training.Trainer(apply_fn, loss, optimizer, x_train,
                                     y_train_t, batch_size, **penalty),
                    training.Trainer(f_lin, loss, optimizer, x_train,
                                     y_train_t, batch_size, consts=(params0,),
                                     **penalty)
                    if 'linearized' in references else None,
                    training.Trainer(f_centered, loss, optimizer, x_train,
                                     y_train_t, batch_size, consts=(params0,),
                                     **penalty)
                    if centered else None)
            # L2 to init pulls each seed's net to its own initialisation.
            center = params0 if l2_to_init else None
            net = trainers[lr][0].rebind(key=batch_key, center=center)
            lin = lin_state = cen = cen_state = None
            with net_precision():
                state = net.init(params0)
                if trainers[lr][1] is not None:
                    lin = trainers[lr][1].rebind(key=batch_key, consts=(params0,),
                                                 center=center)
                    lin_state = lin.init(params0)
                    lin_apply = functools.partial(f_lin_jit, params_0=params0)
                if trainers[lr][2] is not None:
                    cen = trainers[lr][2].rebind(key=batch_key, consts=(params0,),
                                                 center=center)
                    cen_state = cen.init(params0)
                    cen_apply = functools.partial(f_centered_jit, params_0=params0)

            ref = {}  # infinite-width references at every eval step (float64)
            if {'ntk', 'ntk_mean'} & set(references):
                predict = reference(lr)
                if 'ntk' in references:
                    ref['ntk'] = predict(eval_steps, f0_train, f0_test,
                                         k_st['ntk'])
                if 'ntk_mean' in references:
                    ref['ntk_mean'] = predict(eval_steps, np.zeros_like(f0_train),
                                              np.zeros_like(f0_test),
                                              k_st['ntk'])

            watch = _DivergenceWatch(
                lr, lr_kernel if lr_fraction is not None else None,
                full_batch_gd=optimizer_name == 'gd' and batch_size is None, **tag)
            if nth_probe is not None:
                nth_probe.start(params0, probe, x_train, y_train_t, lr)
            for i, step in enumerate(eval_steps):
                # The network side, in the training dtype.
                with net_precision():
                    state = net.advance(state, step)
                    outputs = {
                        'train': _apply_batched(apply_jit, state.params, x_train),
                        'test': _apply_batched(apply_jit, state.params, x_test)}
                    l_out = c_out = None
                    if lin is not None:
                        lin_state = lin.advance(lin_state, step)
                        l_out = {s: _apply_batched(lin_apply, lin_state.params, x)
                                 for s, x in (('train', x_train), ('test', x_test))}
                    if cen is not None:
                        cen_state = cen.advance(cen_state, step)
                        c_out = {s: _apply_batched(cen_apply, cen_state.params, x)
                                 for s, x in (('train', x_train), ('test', x_test))}
                    k_t = (np.asarray(ntk_emp(probe, None, state.params))
                           if probe_size else None)
                    k_c = (np.asarray(ntk_emp(probe, None, cen_state.params))
                           if probe_size and cen is not None else None)
                    predictions = (
                        nth_probe.predictions(step, state.params,
                                              lin_state.params)
                        if nth_probe is not None and step > 0 else None)
                    change = float(training.tree_distance(state.params,
                                                          params0)) / norm0
                    net_slice = None
                    if step in slice_steps:
                        net_slice = np.asarray(slice_fn(
                            state.params, jnp.asarray(x0, train_dtype),
                            jnp.asarray(x_circle, train_dtype)))

                at = dict(step=step, t=lr * step, **tag)
                final = evaluator.rows(rows, outputs, predictor='net', **at)
                if members is not None:
                    members.add('net', i, outputs)
                    if c_out is not None:
                        members.add('net_centered', i, c_out)
                watch(rows, 'net', step, final['train_loss'])
                entry = dict(width=width, seed=seed, predictor='net', **final)
                entries = [entry]
                others = {name: {'train': r_train[i], 'test': r_test[i]}
                          for name, (r_train, r_test) in ref.items()}
                if l_out is not None:
                    others['linearized'] = l_out
                if c_out is not None:
                    others['net_centered'] = c_out
                for name, r_out in others.items():
                    values = evaluator.rows(rows, r_out, predictor=name, **at)
                    watch(rows, name, step, values['train_loss'])
                    entries.append(dict(width=width, seed=seed, predictor=name,
                                        **values))
                    for split in ('train', 'test'):
                        if name == 'net_centered':  # not a reference
                            continue
                        d = _rms(outputs[split], r_out[split])
                        rows.add(f'dist_{name}', d, split=split, **at)
                        if split == 'test':
                            entry[f'dist_{name}'] = d
                if k_t is not None:
                    drift = ntk_drift.relative_change(k_t, probe_k0)
                    rows.add('ntk_drift', drift, probe_size=probe_size, **at)
                    entry['ntk_drift'] = drift
                    _drift_part_rows(rows, k_t, probe_k0, '',
                                     probe_size=probe_size, **at)
                if predictions is not None:
                    for metric, value in hierarchy.nth_values(
                            k_t, probe_k0, *predictions).items():
                        rows.add(metric, value, probe_size=probe_size, **at)
                        entry[metric] = value
                if k_c is not None:
                    drift_c = ntk_drift.relative_change(k_c, probe_k0)
                    rows.add('ntk_drift_centered', drift_c,
                             probe_size=probe_size, **at)
                    _drift_part_rows(rows, k_c, probe_k0, '_centered',
                                     probe_size=probe_size, **at)
                    for e in entries:  # the centred net's line of the summary
                        if e['predictor'] == 'net_centered':
                            e['ntk_drift'] = drift_c
                if layers0 is not None:
                    for suffix, state_now in (('', state), ('_centered', cen_state)):
                        if state_now is None:
                            continue
                        with net_precision():
                            layers_t = _layer_kernels(layer_ntks, state_now.params,
                                                      probe)
                        _add_layer_rows(
                            rows, f'ntk_layer_scale_change{suffix}',
                            [k - k0 for k, k0 in zip(layers_t, layers0)],
                            probe_k0, layer_shapes, probe_size=probe_size, **at)
                rows.add('weight_change', change, **at)
                if cen is not None:
                    rows.add('weight_change_centered', float(
                        training.tree_distance(cen_state.params, params0))
                        / norm0, **at)
                if net_slice is not None:
                    for g, v in zip(gammas, net_slice):
                        rows.add('ntk_slice', v, gamma=float(g), predictor='net',
                                 **at)
                if functions and step == eval_steps[-1]:
                    _point_rows(rows, 'function', outputs['test'], gamma_test,
                                **at)
            rows.add('train_seconds', time.time() - start, **tag)
            if members is not None:
                def mean_reference(ref=ref, lr=lr, f0=(f0_train, f0_test)):
                    """The NTK dynamics from f_0 = 0: this run's when it has
                    them, else from its analytic NTK (None without one)."""
                    if 'ntk_mean' in ref or k_tt is None or (
                            l2 and not l2_to_init):
                        return ref.get('ntk_mean')
                    return reference(lr)(eval_steps, np.zeros_like(f0[0]),
                                         np.zeros_like(f0[1]), k_st['ntk'])
                members.member_done(rows, evaluator, lr, mean_reference,
                                    width=width)
            for e in entries:
                e['step'] = eval_steps[-1]
            summary.extend(entries)

        if functions:
            percentiles = [float(q) for q in
                           as_list(exp.get('percentiles', None))]
            _ensemble_rows(rows, kernel_fn, data, y_train, lr, eval_steps[-1],
                           kernel_dtype, gamma_test, percentiles, width=width,
                           step=eval_steps[-1],
                           t=lr * eval_steps[-1])
            _point_rows(rows, 'train_target', y_train, _gamma(data.x_train),
                        width=width)

    frame = pd.DataFrame(summary)
    if frame.empty:
        return frame
    keys = ['width', 'predictor']
    return frame.drop(columns=['seed']).groupby(keys, sort=False).mean(
        numeric_only=True).reset_index()


class _DivergenceWatch:
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
        fix = {'analytic': 'use experiment.lr_kernel=empirical (each '
                           'width\'s rate from its initial empirical NTK; for '
                           'a convolutional net experiment.lr_kernel='
                           'empirical_outputs, the NTK over outputs too) or a '
                           'smaller experiment.lr_fraction',
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


class _Ensemble:
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

    def member_done(self, rows: RowWriter, evaluator: _Evaluator, lr: float,
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
                                 _rms(mean[split], ref[index]), split=split,
                                 **at)


def _kernel_inf_rows(rows: RowWriter, evaluator: _Evaluator, k_tt, k_st,
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


def _drift_part_rows(rows: RowWriter, kernel_t: np.ndarray,
                     kernel_0: np.ndarray, suffix: str, **columns) -> None:
    """Rows ``ntk_scale_change`` and ``ntk_shape_change`` (+ ``suffix``):
    the NTK's change split into a rescaling of ``Theta_0`` and the rest
    (:func:`ntkexp.ntk_drift.scale_and_shape_change`)."""
    scale, shape = ntk_drift.scale_and_shape_change(kernel_t, kernel_0)
    rows.add(f'ntk_scale_change{suffix}', scale, **columns)
    rows.add(f'ntk_shape_change{suffix}', shape, **columns)


def _layer_kernels(layer_ntks: Callable, params, probe) -> list[np.ndarray]:
    """Each parameter leaf's part of the probe NTK, float64
    (:func:`ntkexp.ntk_drift.layer_ntk_fn`)."""
    return [np.asarray(k, np.float64) for k in layer_ntks(params, probe)]


def _add_layer_rows(rows: RowWriter, metric: str, kernels: list[np.ndarray],
                    kernel_0: np.ndarray, layer_shapes: list[str],
                    **columns) -> None:
    """One ``metric`` row per parameter leaf (``layer``, ``layer_shape``):
    its kernel's component along ``kernel_0``
    (:func:`ntkexp.ntk_drift.along`)."""
    for i, (kernel, shape) in enumerate(zip(kernels, layer_shapes)):
        rows.add(metric, ntk_drift.along(kernel, kernel_0), layer=i,
                 layer_shape=shape, **columns)


def _point_rows(rows: RowWriter, metric: str, values: np.ndarray,
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


def _ensemble_rows(rows: RowWriter, kernel_fn, data, y_train, lr: float,
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
