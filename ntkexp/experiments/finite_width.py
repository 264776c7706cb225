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
references then follow that regularised flow
(:func:`ntkexp.experiments.kernel_dynamics.l2_to_init_flow`), and ``max_lr``
includes the penalty's curvature.

Code: this module resolves and checks the options and trains (``run``: a
``_Setup`` per run, a ``_Width`` per width, a ``_Seed`` per seed);
:mod:`ntkexp.experiments.finite_width_rows` measures and writes the rows, and
:mod:`ntkexp.experiments.kernel_dynamics` gives the infinite-width
references.

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

import dataclasses
import functools
import logging
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
from ntkexp import runner
from ntkexp import training
from ntkexp.empirical_ntk import EmpiricalNTK
from ntkexp.experiments import finite_width_rows as fw_rows
from ntkexp.experiments import hierarchy
from ntkexp.experiments import kernel_dynamics
from ntkexp.experiments.kernel_regression import compute_kernels
from ntkexp.models import count_params
from ntkexp.experiments.options import as_list
from ntkexp.records import RowWriter
from ntkexp.runner import ConfigError, require, target_name

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
    exp = cfg.experiment
    references = [str(r) for r in as_list(exp.get('references', None))]
    decay = bool(exp.get('l2', 0.0)) and exp.get('l2_center', 'zero') != 'init'
    given = runner.command_line_keys() if given is None else given
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
    exp = cfg.experiment
    given = runner.command_line_keys()
    widths = _widths_setting(cfg)
    _check_lists_used(cfg, given, widths)
    _check_widths_and_seeds(cfg, widths)
    _check_schedule(exp)
    optimizer, loss = _check_optimisation(exp)
    probe = _check_probe_set(exp)
    _check_outputs(exp, loss)
    _check_weight_decay(cfg, given, optimizer, loss)
    _check_variants(cfg, probe)


def _check_lists_used(cfg: DictConfig, given: set[str],
                      widths: Optional[list[Any]]) -> None:
    """A run trains the lists; a scalar given on the command line beside them
    would be ignored (a sweep over it would repeat one run)."""
    exp = cfg.experiment
    runner.require_scalar_not_beside_list(cfg, given, 'seed', 'experiment.seeds', 'trains')
    require('model.width' not in given or widths is None,
            f'model.width={cfg.model.get("width")} would be ignored: experiment='
            f'{exp.name} trains the widths {list(widths or [])} '
            '(experiment.widths / experiment.model_widths); give '
            f'experiment.widths=[{cfg.model.get("width")}] instead, or add '
            'experiment.widths=null experiment.model_widths=null to use model.width')
    by_model = exp.get('model_widths', None) or {}
    name = target_name(cfg.model)
    require('experiment.widths' not in given or 'experiment.model_widths' in given
            or name not in by_model,
            f'experiment.widths={as_list(exp.get("widths"), None)} would be ignored: '
            f'experiment={exp.name} trains experiment.model_widths.{name}='
            f'{list(as_list(by_model.get(name), []))} for this model; add '
            'experiment.model_widths=null to use experiment.widths (or set '
            f'experiment.model_widths.{name}=[...])')


def _check_widths_and_seeds(cfg: DictConfig, widths: Optional[list[Any]]) -> None:
    """The widths trained (``experiment.widths`` or ``model.width``) are
    integers >= 1; the seeds are integers."""
    where = 'experiment.widths has'
    if widths is None:
        require(cfg.model.get('width', None) is not None,
                'experiment.widths is null and the model has no width; set '
                'experiment.widths=[64,256]')
        widths, where = [cfg.model.width], 'model.width is'
    for w in widths:
        require(isinstance(w, int) and not isinstance(w, bool) and w >= 1,
                f'{where} {w!r}; widths must be integers >= 1 (e.g. '
                + ('model.width=64)' if where.startswith('model')
                   else 'experiment.widths=[64,256])'))
    for s in as_list(cfg.experiment.get('seeds', None)):
        require(isinstance(s, int) and not isinstance(s, bool),
                f'experiment.seeds has {s!r}; seeds must be integers '
                '(e.g. experiment.seeds=[0,1,2])')


def _check_schedule(exp: DictConfig) -> None:
    """``steps``, the evaluation steps and ``ntk_implementation``."""
    steps = exp.get('steps', None)
    require(isinstance(steps, int) and steps >= 0,
            f'experiment.steps={steps!r} must be an integer >= 0')
    every = exp.get('eval_every', None)
    require(every is None or (isinstance(every, int) and every >= 1),
            f'experiment.eval_every={every!r} must be an integer >= 1 or null')
    for s in as_list(exp.get('eval_steps', None)):
        require(isinstance(s, int) and 0 <= s <= steps,
                f'experiment.eval_steps has {s!r}; use integers in [0, '
                f'experiment.steps={steps}]')
    try:
        ntk_drift.implementation_code(exp.get('ntk_implementation', 1))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _check_optimisation(exp: DictConfig) -> tuple[str, str]:
    """Optimizer, mini-batches, momentum, loss and learning rate.

    Returns:
        ``(optimizer, loss)``.
    """
    optimizer = exp.get('optimizer', 'gd')
    require(optimizer in training.OPTIMIZERS,
            f'experiment.optimizer={optimizer!r} is invalid; use one of '
            f"{', '.join(training.OPTIMIZERS)}")
    batch = exp.get('batch_size', None)
    require(batch is None or (isinstance(batch, int) and batch >= 1),
            f'experiment.batch_size={batch!r} must be an integer >= 1 or null '
            '(full batch)')
    require(not (optimizer == 'gd' and batch is not None),
            'experiment.optimizer=gd is full-batch; use experiment.optimizer=sgd '
            'for mini-batches or experiment.batch_size=null')
    momentum = exp.get('momentum', 0.9)
    require(optimizer != 'momentum' or (momentum is not None and
                                        0 <= float(momentum) < 1),
            f'experiment.momentum={momentum!r} must be in [0, 1)')
    loss = exp.get('loss', 'mse')
    require(loss in training.LOSSES,
            f"experiment.loss={loss!r} is invalid; use one of "
            f"{', '.join(training.LOSSES)}")
    lr, fraction = exp.get('lr', None), exp.get('lr_fraction', None)
    require(fraction is not None or (lr is not None and float(lr) > 0),
            f'experiment.lr={lr!r} must be > 0 (or set experiment.lr_fraction)')
    require(fraction is None or float(fraction) > 0,
            f'experiment.lr_fraction={fraction!r} must be > 0 (e.g. 0.5 of '
            'nt.predict.max_learning_rate) or null')
    lr_kernel = exp.get('lr_kernel', 'analytic')
    require(lr_kernel in LR_KERNELS,
            f'experiment.lr_kernel={lr_kernel!r} is invalid; use one of '
            f"{', '.join(LR_KERNELS)}")
    return optimizer, loss


def _check_probe_set(exp: DictConfig) -> Any:
    """The reference predictors, the NTK-drift probe set and ``nth``.

    Returns:
        ``experiment.probe_size`` as configured.
    """
    references = as_list(exp.get('references', None))
    bad = sorted(set(references) - set(REFERENCES))
    require(not bad, f'experiment.references has {bad}; choose from '
            f'{list(REFERENCES)}')
    probe = exp.get('probe_size', 0)
    require(isinstance(probe, int) and probe >= 0,
            f'experiment.probe_size={probe!r} must be an integer >= 0 (0 = no '
            'NTK drift)')
    nth = exp.get('nth', False)
    require(isinstance(nth, bool),
            f'experiment.nth={nth!r} must be true or false')
    require(not nth or (probe and 'linearized' in references),
            'experiment.nth compares the NTK change on the probe set with the '
            'hierarchy along the linearised network; give experiment.probe_size '
            f'> 0 (now {probe!r}) and linearized in experiment.references (now '
            f'{list(references)}), e.g. experiment=nth')
    return probe


def _check_outputs(exp: DictConfig, loss: str) -> None:
    """The training dtype and what is measured: the slice of Jacot et al.'s
    Fig. 1, percentiles, the Gaussian of the functions, the kernel ridge."""
    dtype = exp.get('train_dtype', None)
    require(dtype is None or dtype in DTYPES,
            f'experiment.train_dtype={dtype!r} is invalid; use float32, float64 '
            'or null (= precision)')
    slice_cfg = exp.get('slice', None)
    if slice_cfg is not None:
        x0 = as_list(slice_cfg.get('x0', None), None)
        require(x0 is not None and len(x0) == 2,
                'experiment.slice.x0 must be a 2-D point, e.g. [1.0, 0.0]')
        require(int(slice_cfg.get('points', 0)) >= 2,
                'experiment.slice.points must be >= 2')
    for q in as_list(exp.get('percentiles', None)):
        require(0 < float(q) < 100,
                f'experiment.percentiles has {q!r}; use values in (0, 100)')
    require(not (exp.get('functions', False) and loss != 'mse'),
            'experiment.functions compares with the infinite-width Gaussian of '
            'the MSE loss; use experiment.loss=mse')
    reg = exp.get('kernel_diag_reg', 0.0)
    require(reg is not None and float(reg) >= 0,
            f'experiment.kernel_diag_reg={reg!r} must be >= 0')


def _check_weight_decay(cfg: DictConfig, given: set[str], optimizer: str,
                        loss: str) -> None:
    """``l2`` and ``l2_center``; with L2, the kernel references need L2
    towards the initialisation, the MSE loss and (S)GD (Lee et al. 2020,
    Sec. 3: the closed form)."""
    exp = cfg.experiment
    l2 = exp.get('l2', 0.0)
    require(isinstance(l2, (int, float)) and not isinstance(l2, bool) and l2 >= 0,
            f'experiment.l2={l2!r} must be a number >= 0 (the coefficient of '
            'l2/2 ||theta - center||^2; 0 = none)')
    center = exp.get('l2_center', 'zero')
    require(center in L2_CENTERS,
            f'experiment.l2_center={center!r} is invalid; use zero (weight '
            'decay) or init (L2 towards the initialisation)')
    infinite = sorted({'ntk', 'ntk_mean'} & set(references_of(cfg, given)))
    if l2 and infinite:
        require(center == 'init',
                f'experiment.references {infinite} are kernel dynamics, which '
                'weight decay towards zero has no kernel form for; use '
                'experiment.l2_center=init (L2 towards the initialisation) or '
                'experiment.references=[linearized]')
        require(loss == 'mse' and optimizer != 'momentum',
                f'experiment.references {infinite} with experiment.l2 have a '
                'closed form for the MSE loss and (S)GD only; use '
                'experiment.loss=mse experiment.optimizer=gd, or '
                'experiment.references=[linearized]')


def _check_variants(cfg: DictConfig, probe: Any) -> None:
    """Per-layer NTKs, the centred net and the ensemble of the seeds."""
    exp = cfg.experiment
    layers = exp.get('ntk_layers', False)
    require(isinstance(layers, bool),
            f'experiment.ntk_layers={layers!r} must be true or false')
    require(not layers or (isinstance(probe, int) and probe > 0),
            'experiment.ntk_layers splits the NTK on the probe set by parameter '
            f'leaf; give experiment.probe_size > 0 (now {probe!r})')
    center_scale = exp.get('center_scale', 1.0)
    require(isinstance(center_scale, (int, float))
            and not isinstance(center_scale, bool),
            f'experiment.center_scale={center_scale!r} must be a number (the '
            'centred net is f(theta, x) - center_scale f(theta_0, x); 1 = Lee et '
            'al. 2020)')
    require(center_scale == 1.0 or exp.get('centered', False),
            f'experiment.center_scale={center_scale!r} sets the centred net, '
            'which this run does not train; add experiment.centered=true')
    ensemble = exp.get('ensemble', False)
    require(isinstance(ensemble, bool),
            f'experiment.ensemble={ensemble!r} must be true or false')
    require(not ensemble or len(seeds_of(cfg)) >= 2,
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


# ----------------------------------------------------------------------------
# The experiment.


@dataclasses.dataclass
class _Circle:
    """The NTK slice's inputs (Jacot et al. 2018, Fig. 1): ``x0`` and the
    points ``x_circle`` of the unit circle at angles ``gammas``."""
    x0: np.ndarray
    gammas: np.ndarray
    x_circle: np.ndarray


def _circle(slice_cfg: DictConfig, input_shape: tuple[int, ...]) -> _Circle:
    """``experiment.slice``'s inputs, shaped like the dataset's."""
    x0 = np.asarray([as_list(slice_cfg.x0, None)], np.float64)
    gammas = np.linspace(-np.pi, np.pi, int(slice_cfg.points))
    x_circle = np.stack([np.cos(gammas), np.sin(gammas)], axis=1)
    if int(np.prod(input_shape)) != 2:
        raise ValueError('experiment.slice needs 2-D inputs (e.g. '
                         'dataset=circle or dataset=gaussian with d=2); '
                         f'this dataset has inputs of shape {input_shape}')
    return _Circle(x0.reshape((1,) + input_shape), gammas,
                   x_circle.reshape((-1,) + input_shape))


class _Setup:
    """What every width and seed of a run shares: the options of
    ``cfg.experiment``, resolved once, and the data in the kernels' and the
    networks' dtypes."""

    def __init__(self, cfg: DictConfig, rows: RowWriter):
        exp = self.exp = cfg.experiment
        self.cfg = cfg
        self.kernel_dtype = (np.float64 if cfg.get('precision') == 'float64'
                             else np.float32)
        self.train_dtype = jnp.dtype(exp.get('train_dtype', None) or (
            'float64' if self.kernel_dtype == np.float64 else 'float32'))
        if self.train_dtype == jnp.float64 and not jax.config.jax_enable_x64:
            raise ValueError('experiment.train_dtype=float64 needs precision=float64')
        # precision is the kernels' and solves'; the networks train in this.
        rows.base['train_dtype'] = str(self.train_dtype)
        # A row of one seed says which; a row of all (the analytic kernels,
        # the ensembles) names the seed only when there is one.
        seeds = seeds_of(cfg)
        rows.base['seed'] = seeds[0] if len(seeds) == 1 else None

        data = self.data = instantiate(cfg.dataset)
        rows.fill_sizes(data)  # null n_train / n_test: the sizes loaded
        self.loss_name = str(exp.get('loss', 'mse'))
        y_train, y_test = data.y_train, data.y_test
        if self.loss_name == 'xent':
            if data.labels_train is None:
                raise ValueError('experiment.loss=xent needs a classification '
                                 'dataset; use experiment.loss=mse')
            k = int(data.n_classes)
            y_train = np.eye(k)[data.labels_train]
            y_test = np.eye(k)[data.labels_test]
        self.y_train = np.asarray(y_train, np.float64)
        self.y_test = np.asarray(y_test, np.float64)
        self.out_dim = self.y_train.shape[1]
        self.x_train_k = np.asarray(data.x_train, self.kernel_dtype)
        self.x_test_k = np.asarray(data.x_test, self.kernel_dtype)
        self.x_train = jnp.asarray(data.x_train, self.train_dtype)
        self.x_test = jnp.asarray(data.x_test, self.train_dtype)
        self.y_train_t = jnp.asarray(self.y_train, self.train_dtype)
        self.input_shape = tuple(data.x_train.shape[1:])
        self.loss = training.get_loss(self.loss_name)
        self.evaluator = fw_rows.Evaluator(self.loss, self.y_train, self.y_test,
                                           data.labels_train, data.labels_test)

        self.optimizer_name = str(exp.get('optimizer', 'gd'))
        self.momentum = float(exp.get('momentum', 0.9) or 0.0)
        self.opt_momentum = (self.momentum if self.optimizer_name == 'momentum'
                             else 0.0)
        self.batch_size = exp.get('batch_size', None)
        self.references = references_of(cfg)
        dropped = [r for r in as_list(exp.get('references', None))
                   if r not in self.references]
        if dropped:
            log.warning('experiment.l2=%s decays the weights towards zero, under '
                        'which the kernel dynamics %s have no kernel form: left out '
                        '(experiment.l2_center=init keeps them)', exp.l2, dropped)
        self.lr_kernel = str(exp.get('lr_kernel', 'analytic'))
        self.lr_fraction = exp.get('lr_fraction', None)
        self.eval_steps = eval_steps_of(exp)
        self.probe_size = min(int(exp.get('probe_size', 0)), len(data.x_train))
        slice_cfg = exp.get('slice', None)
        self.slice_steps = (set(slice_steps_of(exp)) if slice_cfg is not None
                            else set())
        self.circle = (_circle(slice_cfg, self.input_shape)
                       if slice_cfg is not None else None)
        self.functions = bool(exp.get('functions', False))
        self.kernel_inf = bool(exp.get('kernel_inf', False))
        self.centered = bool(exp.get('centered', False))
        self.ntk_layers = bool(exp.get('ntk_layers', False)) and self.probe_size > 0
        self.ensemble = bool(exp.get('ensemble', False))
        self.nth = bool(exp.get('nth', False))
        self.l2 = float(exp.get('l2', 0.0) or 0.0)
        # The hierarchy to K^(4) (ntk_drift.second_order_gd) expands full-batch
        # training.
        self.nth2 = self.nth and hierarchy.second_order_applies(
            self.batch_size, len(data.x_train))
        self.l2_to_init = (bool(self.l2)
                           and str(exp.get('l2_center', 'zero')) == 'init')
        self.gamma_test = fw_rows.circle_angle(data.x_test)
        self.need_ntk = bool({'ntk', 'ntk_mean'} & set(self.references)) or (
            self.kernel_inf or (self.lr_fraction is not None
                                and self.lr_kernel == 'analytic'))
        self.get = ('nngp', 'ntk') if self.kernel_inf else ('ntk',)
        # In the NTK parameterisation the analytic kernels do not depend on
        # the width: computed once for all widths.
        self.width_free = str(cfg.model.get('parameterization', 'ntk')) == 'ntk'
        self.cached_kernels = None
        self.ntk_implementation = ntk_drift.implementation_code(
            exp.get('ntk_implementation', 1))

    def net_precision(self):
        """JAX's x64 mode for the finite networks: off for float32 training.

        With x64 on, neural-tangents' layers multiply float32 activations by
        float64 NumPy scales and silently compute in float64 (and its Conv
        then fails on mixed dtypes); kernels and references stay in the
        ambient ``precision``.
        """
        return jax.enable_x64(self.train_dtype == jnp.float64)


class _Width:
    """One width of a run: its model, its analytic kernels and kernel rows,
    and what its seeds share (compiled trainers per learning rate, the
    kernel dynamics per learning rate, the empirical-NTK functions)."""

    def __init__(self, setup: _Setup, width: int, rows: RowWriter):
        s = self.setup = setup
        self.width, self.rows = width, rows
        wcfg = _model_cfg(s.cfg, width)
        init_fn, apply_fn, kernel_fn = instantiate(wcfg.model, out_dim=s.out_dim)
        self.init_fn, self.apply_fn, self.kernel_fn = init_fn, apply_fn, kernel_fn
        self.apply_jit = jax.jit(apply_fn)
        self.k_tt = self.k_st = None
        if s.need_ntk:
            if s.width_free and s.cached_kernels is not None:
                self.k_tt, self.k_st = s.cached_kernels
            else:
                self.k_tt, self.k_st, seconds = compute_kernels(
                    wcfg, kernel_fn, s.x_train_k, s.x_test_k, s.get)
                rows.add('kernel_seconds', seconds, width=width)
                s.cached_kernels = (self.k_tt, self.k_st)
        if s.kernel_inf:
            fw_rows.kernel_inf_rows(rows, s.evaluator, self.k_tt, self.k_st, s.y_train,
                                    float(s.exp.get('kernel_diag_reg', 0.0) or 0.0),
                                    width=width)
        if s.circle is not None:
            inf_slice = np.asarray(jax.jit(kernel_fn, static_argnames='get')(
                jnp.asarray(s.circle.x0, s.kernel_dtype),
                jnp.asarray(s.circle.x_circle, s.kernel_dtype), get='ntk'))[0]
            for g, v in zip(s.circle.gammas, inf_slice):
                rows.add('ntk_slice', v, gamma=float(g), predictor='infinite',
                         width=width)
        self.trainers = {}  # one compiled loop per learning rate
        self.reference_fns = {}  # the kernel dynamics per lr, shared by the seeds
        self.f_lin = training.linearized_apply_fn(apply_fn)
        self.f_lin_jit = jax.jit(self.f_lin)
        self.f_centered = training.centered_apply_fn(
            apply_fn, float(s.exp.get('center_scale', 1.0)))
        self.f_centered_jit = jax.jit(self.f_centered)
        self.slice_fn = jax.jit(functools.partial(ntk_drift.ntk_slice, apply_fn))
        self.nth_probe = (
            hierarchy.HierarchyProbe(apply_fn, s.nth2, s.loss, s.opt_momentum, s.l2,
                                     s.l2_to_init)
            if s.nth else None)
        # Blocks sized from kernel.memory_gb: lr_kernel=empirical takes the
        # whole training set's NTK.
        self.ntk_emp = (EmpiricalNTK.for_run(s.cfg, apply_fn, s.ntk_implementation)
                        if s.probe_size or s.lr_kernel == 'empirical' else None)
        self.layer_ntks = (ntk_drift.layer_ntk_fn(apply_fn, s.ntk_implementation)
                           if s.ntk_layers else None)
        self.members = (fw_rows.SeedEnsemble(len(seeds_of(s.cfg)), s.eval_steps)
                        if s.ensemble else None)

    def reference(self, lr: float) -> Callable:
        """This width's infinite-width dynamics at ``lr``
        (:func:`ntkexp.experiments.kernel_dynamics.reference_fn`), built once."""
        s = self.setup
        if lr not in self.reference_fns:
            self.reference_fns[lr] = kernel_dynamics.reference_fn(
                s.loss_name, s.optimizer_name, s.momentum, self.k_tt['ntk'],
                s.y_train, lr, s.loss, s.l2)
        return self.reference_fns[lr]

    def trainers_at(self, lr: float, params0) -> tuple:
        """The network's, the linearised network's and the centred network's
        trainers at ``lr`` (None where not trained), compiled once per width
        and learning rate; a seed rebinds them to its own ``params0``."""
        s = self.setup
        if lr not in self.trainers:
            optimizer = training.make_optimizer(s.optimizer_name, lr, s.momentum)
            penalty = dict(l2=s.l2, center=params0 if s.l2_to_init else None)
            common = (optimizer, s.x_train, s.y_train_t, s.batch_size)
            self.trainers[lr] = (
                training.Trainer(self.apply_fn, s.loss, *common, **penalty),
                training.Trainer(self.f_lin, s.loss, *common, consts=(params0,),
                                 **penalty)
                if 'linearized' in s.references else None,
                training.Trainer(self.f_centered, s.loss, *common,
                                 consts=(params0,), **penalty)
                if s.centered else None)
        return self.trainers[lr]

    def finish(self, lr: float) -> None:
        """Rows of the whole width, after its seeds: with
        ``experiment.functions``, the infinite-width Gaussian at the last
        step of training at ``lr`` (the last seed's) and the training targets
        (Jacot et al. 2018, Fig. 2)."""
        s = self.setup
        if not s.functions:
            return
        last = s.eval_steps[-1]
        percentiles = [float(q) for q in as_list(s.exp.get('percentiles', None))]
        fw_rows.ensemble_rows(self.rows, self.kernel_fn, s.data, s.y_train, lr,
                              last, s.kernel_dtype, s.gamma_test, percentiles,
                              width=self.width, step=last, t=lr * last)
        fw_rows.point_rows(self.rows, 'train_target', s.y_train,
                           fw_rows.circle_angle(s.data.x_train), width=self.width)


@dataclasses.dataclass
class _Start:
    """A seed's initialisation: parameters, initial outputs and probe NTK."""
    key: Any
    batch_key: Any
    params0: Any
    f0_train: np.ndarray
    f0_test: np.ndarray
    probe: Any
    probe_k0: Optional[np.ndarray]
    norm0: float
    layers0: Optional[list[np.ndarray]]
    kernel_for_lr: Optional[np.ndarray]
    top_for_lr: Optional[float]


@dataclasses.dataclass
class _Predictor:
    """A trained predictor beside the network (linearised or centred): its
    trainer, state and jitted apply function with ``params_0`` bound."""
    trainer: Any
    state: Any
    apply: Callable

    def advance(self, step: int, x_train, x_test) -> dict[str, np.ndarray]:
        """Trains to ``step``; returns the outputs per split."""
        self.state = self.trainer.advance(self.state, step)
        return {split: fw_rows.apply_batched(self.apply, self.state.params, x)
                for split, x in (('train', x_train), ('test', x_test))}


@dataclasses.dataclass
class _Observed:
    """The network side of one evaluation step, in the training dtype."""
    outputs: dict[str, np.ndarray]
    lin_out: Optional[dict[str, np.ndarray]]
    cen_out: Optional[dict[str, np.ndarray]]
    k_t: Optional[np.ndarray]
    k_c: Optional[np.ndarray]
    predictions: Optional[tuple]
    change: float
    net_slice: Optional[np.ndarray]


class _Seed:
    """One seed at one width: initialises, trains the network and the
    predictors beside it, and writes each evaluation step's rows."""

    def __init__(self, width: _Width, seed: int, rows: RowWriter):
        self.w, self.s, self.rows = width, width.setup, rows
        self.began = time.time()  # train_seconds count the initialisation too
        self.tag = dict(width=width.width, seed=seed)
        self.start = self._initialise(seed)

    def _initialise(self, seed: int) -> _Start:
        w, s = self.w, self.s
        with s.net_precision():
            key = jax.random.PRNGKey(seed)
            _, params0 = w.init_fn(key, (-1,) + s.input_shape)
            params0 = training.cast(params0, s.train_dtype)
            kernel_for_lr = top_for_lr = None
            if s.lr_kernel == 'empirical' and s.lr_fraction is not None:
                kernel_for_lr = np.asarray(w.ntk_emp(s.x_train, None, params0))
            if s.lr_kernel == 'empirical_outputs' and s.lr_fraction is not None:
                top_for_lr = training.ntk_top_eigenvalue(w.apply_fn, params0,
                                                         s.x_train)
            f0_train = fw_rows.apply_batched(w.apply_jit, params0, s.x_train)
            f0_test = fw_rows.apply_batched(w.apply_jit, params0, s.x_test)
            probe = s.x_train[:s.probe_size]
            probe_k0 = (np.asarray(w.ntk_emp(probe, None, params0))
                        if s.probe_size else None)
            norm0 = float(training.tree_norm(params0))
            batch_key = jax.random.fold_in(key, 1)
            layers0 = (fw_rows.layer_kernels(w.layer_ntks, params0, probe)
                       if w.layer_ntks is not None else None)
        self.rows.add('n_params', count_params(params0), **self.tag)
        self.layer_shapes = None
        if layers0 is not None:
            self.layer_shapes = [ntk_drift.shape_text(leaf.shape) for leaf
                                 in jax.tree_util.tree_leaves(params0)]
            fw_rows.add_layer_rows(self.rows, 'ntk_layer_share', layers0, probe_k0,
                                   self.layer_shapes, probe_size=s.probe_size,
                                   **self.tag)
        if kernel_for_lr is None and w.k_tt is not None:
            kernel_for_lr = w.k_tt['ntk']
        return _Start(key, batch_key, params0, f0_train, f0_test, probe, probe_k0,
                      norm0, layers0, kernel_for_lr, top_for_lr)

    def _learning_rate(self) -> float:
        """``experiment.lr``, or ``lr_fraction`` of the stability bound of
        the chosen kernel (rows ``lr`` and ``max_lr``)."""
        s, start = self.s, self.start
        lr, max_lr = training.resolve_learning_rate(
            s.exp.get('lr', None), s.lr_fraction, start.kernel_for_lr,
            s.y_train.size, s.opt_momentum, s.l2, start.top_for_lr)
        self.rows.add('lr', lr, **self.tag)
        if max_lr is not None:
            self.rows.add('max_lr', max_lr, kernel=(
                s.lr_kernel if s.lr_fraction is not None else 'analytic'), **self.tag)
        return lr

    def _references(self, lr: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The kernel dynamics at every evaluation step (float64): ``ntk``
        from the network's ``f_0``, ``ntk_mean`` from ``f_0 = 0``."""
        s, w, start = self.s, self.w, self.start
        ref = {}
        if {'ntk', 'ntk_mean'} & set(s.references):
            predict = w.reference(lr)
            if 'ntk' in s.references:
                ref['ntk'] = predict(s.eval_steps, start.f0_train, start.f0_test,
                                     w.k_st['ntk'])
            if 'ntk_mean' in s.references:
                ref['ntk_mean'] = predict(s.eval_steps, np.zeros_like(start.f0_train),
                                          np.zeros_like(start.f0_test), w.k_st['ntk'])
        return ref

    def train(self) -> list[dict]:
        """Trains through the evaluation steps, writing their rows; returns
        the summary entries of the last step (one per predictor)."""
        s, w, start = self.s, self.w, self.start
        lr = self.lr = self._learning_rate()
        net_trainer, lin_trainer, cen_trainer = w.trainers_at(lr, start.params0)
        # L2 to init pulls each seed's net to its own initialisation.
        center = start.params0 if s.l2_to_init else None
        self.net = net_trainer.rebind(key=start.batch_key, center=center)
        with s.net_precision():
            self.state = self.net.init(start.params0)
            self.lin = self._predictor(lin_trainer, w.f_lin_jit, center)
            self.cen = self._predictor(cen_trainer, w.f_centered_jit, center)
        ref = self._references(lr)
        self.watch = fw_rows.DivergenceWatch(
            lr, s.lr_kernel if s.lr_fraction is not None else None,
            full_batch_gd=s.optimizer_name == 'gd' and s.batch_size is None,
            **self.tag)
        if w.nth_probe is not None:
            w.nth_probe.start(start.params0, start.probe, s.x_train, s.y_train_t, lr)
        entries = []
        for i, step in enumerate(s.eval_steps):
            entries = self._record(i, step, self._observe(step), ref)
        self.rows.add('train_seconds', time.time() - self.began, **self.tag)
        if w.members is not None:
            w.members.member_done(self.rows, s.evaluator, lr,
                                  functools.partial(self._mean_reference, ref),
                                  width=w.width)
        for e in entries:
            e['step'] = s.eval_steps[-1]
        return entries

    def _predictor(self, trainer, apply_jit: Callable, center) -> Optional[_Predictor]:
        """The linearised or centred network of this seed (None where
        ``trainer`` is): the width's trainer bound to this seed's batches,
        ``params_0`` and L2 centre, initialised at ``params_0``."""
        if trainer is None:
            return None
        params0 = self.start.params0
        bound = trainer.rebind(key=self.start.batch_key, consts=(params0,), center=center)
        return _Predictor(bound, bound.init(params0),
                          functools.partial(apply_jit, params_0=params0))

    def _mean_reference(self, ref: dict) -> Optional[tuple]:
        """The NTK dynamics from f_0 = 0: this run's when it has them, else
        from its analytic NTK (None without one)."""
        s, w = self.s, self.w
        if 'ntk_mean' in ref or w.k_tt is None or (s.l2 and not s.l2_to_init):
            return ref.get('ntk_mean')
        return w.reference(self.lr)(s.eval_steps, np.zeros_like(self.start.f0_train),
                                    np.zeros_like(self.start.f0_test), w.k_st['ntk'])

    def _observe(self, step: int) -> _Observed:
        """Trains every predictor to ``step`` and measures the network side."""
        s, w, start = self.s, self.w, self.start
        with s.net_precision():
            self.state = self.net.advance(self.state, step)
            params = self.state.params
            outputs = {'train': fw_rows.apply_batched(w.apply_jit, params, s.x_train),
                       'test': fw_rows.apply_batched(w.apply_jit, params, s.x_test)}
            lin_out = (self.lin.advance(step, s.x_train, s.x_test)
                       if self.lin is not None else None)
            cen_out = (self.cen.advance(step, s.x_train, s.x_test)
                       if self.cen is not None else None)
            k_t = (np.asarray(w.ntk_emp(start.probe, None, params))
                   if s.probe_size else None)
            k_c = (np.asarray(w.ntk_emp(start.probe, None, self.cen.state.params))
                   if s.probe_size and self.cen is not None else None)
            predictions = (w.nth_probe.predictions(step, params, self.lin.state.params)
                           if w.nth_probe is not None and step > 0 else None)
            change = float(training.tree_distance(params, start.params0)) / start.norm0
            net_slice = None
            if step in s.slice_steps:
                net_slice = np.asarray(w.slice_fn(
                    params, jnp.asarray(s.circle.x0, s.train_dtype),
                    jnp.asarray(s.circle.x_circle, s.train_dtype)))
        return _Observed(outputs, lin_out, cen_out, k_t, k_c, predictions, change,
                         net_slice)

    def _record(self, i: int, step: int, seen: _Observed, ref: dict) -> list[dict]:
        """Writes step ``step``'s rows; returns its summary entries."""
        s, w, start, rows = self.s, self.w, self.start, self.rows
        probe = dict(probe_size=s.probe_size)
        at = dict(step=step, t=self.lr * step, **self.tag)
        final = s.evaluator.rows(rows, seen.outputs, predictor='net', **at)
        if w.members is not None:
            w.members.add('net', i, seen.outputs)
            if seen.cen_out is not None:
                w.members.add('net_centered', i, seen.cen_out)
        self.watch(rows, 'net', step, final['train_loss'])
        entry = dict(self.tag, predictor='net', **final)
        entries = [entry]
        others = {name: {'train': r_train[i], 'test': r_test[i]}
                  for name, (r_train, r_test) in ref.items()}
        if seen.lin_out is not None:
            others['linearized'] = seen.lin_out
        if seen.cen_out is not None:
            others['net_centered'] = seen.cen_out
        for name, r_out in others.items():
            values = s.evaluator.rows(rows, r_out, predictor=name, **at)
            self.watch(rows, name, step, values['train_loss'])
            entries.append(dict(self.tag, predictor=name, **values))
            if name == 'net_centered':  # not a reference
                continue
            for split in ('train', 'test'):
                d = fw_rows.rms_distance(seen.outputs[split], r_out[split])
                rows.add(f'dist_{name}', d, split=split, **at)
                if split == 'test':
                    entry[f'dist_{name}'] = d
        if seen.k_t is not None:
            drift = ntk_drift.relative_change(seen.k_t, start.probe_k0)
            rows.add('ntk_drift', drift, **probe, **at)
            entry['ntk_drift'] = drift
            fw_rows.drift_part_rows(rows, seen.k_t, start.probe_k0, '', **probe, **at)
        if seen.predictions is not None:
            for metric, value in hierarchy.nth_values(
                    seen.k_t, start.probe_k0, *seen.predictions).items():
                rows.add(metric, value, **probe, **at)
                entry[metric] = value
        if seen.k_c is not None:
            drift_c = ntk_drift.relative_change(seen.k_c, start.probe_k0)
            rows.add('ntk_drift_centered', drift_c, **probe, **at)
            fw_rows.drift_part_rows(rows, seen.k_c, start.probe_k0, '_centered',
                                    **probe, **at)
            for e in entries:  # the centred net's line of the summary
                if e['predictor'] == 'net_centered':
                    e['ntk_drift'] = drift_c
        if start.layers0 is not None:
            states = (('', self.state),
                      ('_centered', self.cen.state if self.cen is not None else None))
            for suffix, state in states:
                if state is None:
                    continue
                with s.net_precision():
                    layers_t = fw_rows.layer_kernels(w.layer_ntks, state.params,
                                                     start.probe)
                fw_rows.add_layer_rows(
                    rows, f'ntk_layer_scale_change{suffix}',
                    [k - k0 for k, k0 in zip(layers_t, start.layers0)],
                    start.probe_k0, self.layer_shapes, **probe, **at)
        rows.add('weight_change', seen.change, **at)
        if self.cen is not None:
            rows.add('weight_change_centered', float(training.tree_distance(
                self.cen.state.params, start.params0)) / start.norm0, **at)
        if seen.net_slice is not None:
            for g, v in zip(s.circle.gammas, seen.net_slice):
                rows.add('ntk_slice', v, gamma=float(g), predictor='net', **at)
        if s.functions and step == s.eval_steps[-1]:
            fw_rows.point_rows(rows, 'function', seen.outputs['test'], s.gamma_test,
                               **at)
        return entries


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
    setup = _Setup(cfg, rows)
    summary = []
    for width in widths_of(cfg):
        this_width = _Width(setup, width, rows)
        for seed in seeds_of(cfg):
            trained = _Seed(this_width, seed, rows)
            summary.extend(trained.train())
        this_width.finish(trained.lr)
    frame = pd.DataFrame(summary)
    if frame.empty:
        return frame
    keys = ['width', 'predictor']
    return frame.drop(columns=['seed']).groupby(keys, sort=False).mean(
        numeric_only=True).reset_index()
