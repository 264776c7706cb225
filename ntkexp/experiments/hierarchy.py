"""The Neural Tangent Hierarchy's predictions of the NTK's change (``experiment.nth``).

Huang & Yau 2020 ("Dynamics of Deep Neural Networks and Neural Tangent
Hierarchy") write the NTK's flow in gradient descent through ``K^(3)``, whose
own flow needs ``K^(4)``, and so on. :class:`HierarchyProbe` gives, at each
evaluation step of a :mod:`ntkexp.experiments.finite_width` run and on a probe
set, the predictions of ``Theta_t - Theta_0`` that :func:`nth_values` turns
into rows:

* the hierarchy truncated at ``K^(3)`` (frozen at initialisation, driven by
  the linearised net's residuals): ``D Theta(theta_0)[theta_lin(t) -
  theta_0]`` (:func:`ntkexp.ntk_drift.ntk_derivative`);
* the first- and second-order Taylor expansions along the network's actual
  displacement (:func:`ntkexp.ntk_drift.ntk_taylor_terms`);
* for full-batch training (:func:`second_order_applies`; any loss,
  momentum or L2 penalty), the hierarchy truncated at ``K^(4)``:
  ``D Theta[v + w] + D^2 Theta[v, v] / 2`` with ``v + w`` gradient descent to
  second order (:func:`ntkexp.ntk_drift.second_order_gd`), from
  initialisation alone.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntkexp import ntk_drift

log = logging.getLogger(__name__)


def second_order_applies(batch_size: Any, n_train: int) -> bool:
    """Whether ``experiment.nth`` also writes the ``nth2`` rows: the expansion
    of :func:`ntkexp.ntk_drift.second_order_gd` is of full-batch training
    (any loss, momentum or L2 penalty); a mini-batch run logs why it has none."""
    if batch_size is None or int(batch_size) >= n_train:
        return True
    log.warning('experiment.nth: no nth2 rows (the hierarchy to K^(4) expands '
                'full-batch training), because experiment.batch_size=%s of %d '
                'training points', batch_size, n_train)
    return False


def nth_values(kernel_t: np.ndarray, kernel_0: np.ndarray,
               change_nth: np.ndarray, first: np.ndarray,
               second: np.ndarray,
               change_nth2: Optional[np.ndarray] = None) -> dict[str, float]:
    """The rows ``nth_drift``, ``nth_residual``, ``nth_cosine``,
    ``taylor1_residual`` and ``taylor2_residual``; with ``change_nth2``,
    ``nth2_drift`` and ``nth2_residual``.

    Args:
        kernel_t: the empirical NTK on the probe set at step ``t``.
        kernel_0: the same at initialisation.
        change_nth: the hierarchy's first correction ``D Theta(theta_0)
            [theta_lin(t) - theta_0]`` on the probe set.
        first, second: ``D Theta(theta_0)[d]`` and ``D^2 Theta(theta_0)[d, d]``
            along the network's actual displacement ``d = theta_t - theta_0``.
        change_nth2: the hierarchy to ``K^(4)``, ``D Theta[v + w] + D^2
            Theta[v, v] / 2`` of :func:`ntkexp.ntk_drift.second_order_gd`.

    Returns:
        ``||dTheta|| / ||Theta_0||``; the residual ``||Theta_t - Theta_0 -
        P|| / ||Theta_t - Theta_0||`` of ``P = dTheta`` (``nth``), of ``P =
        first`` (``taylor1``) and of ``P = first + second / 2``
        (``taylor2``) and of ``P = change_nth2`` (``nth2``); the cosine of
        ``dTheta`` with ``Theta_t - Theta_0`` (NaN for residuals and cosine
        while the NTK has not moved).
    """
    kernel_0 = np.asarray(kernel_0, np.float64)
    change = np.asarray(kernel_t, np.float64) - kernel_0
    change_nth = np.asarray(change_nth, np.float64)
    predicted = dict(nth=change_nth, taylor1=np.asarray(first, np.float64),
                     taylor2=np.asarray(first, np.float64)
                     + np.asarray(second, np.float64) / 2)
    norm = np.linalg.norm(change)
    norm_nth = np.linalg.norm(change_nth)
    moved = norm > 0
    values = dict(nth_drift=float(norm_nth / np.linalg.norm(kernel_0)))
    if change_nth2 is not None:
        predicted['nth2'] = np.asarray(change_nth2, np.float64)
        values['nth2_drift'] = float(np.linalg.norm(predicted['nth2'])
                                     / np.linalg.norm(kernel_0))
    for name, p in predicted.items():
        values[f'{name}_residual'] = (
            float(np.linalg.norm(change - p) / norm) if moved else math.nan)
    values['nth_cosine'] = (float(np.vdot(change, change_nth) / (norm * norm_nth))
                            if moved and norm_nth > 0 else math.nan)
    return values


def _displacement(params: Any, params_0: Any) -> Any:
    return jax.tree_util.tree_map(jnp.subtract, params, params_0)


class HierarchyProbe:
    """The predictions of the NTK's change for one network (one width).

    Args:
        apply_fn: ``apply_fn(params, x)`` returning ``(N, k)``.
        second_order: also predict with the hierarchy to ``K^(4)``
            (:func:`second_order_applies` says when it holds).
        loss: the training loss ``loss(fx, y)``.
        momentum: the heavy-ball coefficient of the training (0: none).
        l2: the L2 coefficient of the training objective.
        l2_to_init: the L2 penalty pulls towards each seed's initialisation
            (else towards zero).
    """

    def __init__(self, apply_fn: Callable, second_order: bool,
                 loss: Optional[Callable] = None, momentum: float = 0.0,
                 l2: float = 0.0, l2_to_init: bool = False):
        self._apply_fn = apply_fn
        self.second_order = second_order
        self._training = dict(loss=loss, momentum=momentum, l2=l2)
        self._l2_to_init = l2_to_init
        self._derivative = jax.jit(functools.partial(ntk_drift.ntk_derivative,
                                                     apply_fn))
        self._taylor = jax.jit(functools.partial(ntk_drift.ntk_taylor_terms,
                                                 apply_fn))
        self._seed = None

    def start(self, params_0: Any, probe: jnp.ndarray, x_train: jnp.ndarray,
              y_train: jnp.ndarray, lr: float) -> None:
        """Starts a seed: its initialisation, the probe inputs, and the data
        and learning rate of its full-batch training (used by the hierarchy
        to ``K^(4)`` only)."""
        expansion = state = None
        if self.second_order:
            expansion = ntk_drift.second_order_gd(
                self._apply_fn, params_0, x_train, y_train, lr,
                center=params_0 if self._l2_to_init else None, **self._training)
            state = expansion.init()
        self._seed = dict(params_0=params_0, probe=probe, expansion=expansion,
                          state=state, at=0)

    def predictions(self, step: int, params: Any, params_lin: Any) -> tuple:
        """The arguments after ``kernel_t, kernel_0`` of :func:`nth_values` at
        ``step`` (after 0, and after the previous call's step).

        Args:
            step: the evaluation step.
            params: the network's parameters at ``step``.
            params_lin: the linearised network's.
        """
        seed = self._seed
        params_0, probe = seed['params_0'], seed['probe']
        taylor = self._taylor(params_0, _displacement(params, params_0), probe)
        if not self.second_order:
            return (self._derivative(params_0, _displacement(params_lin, params_0),
                                     probe), *taylor)
        seed['state'] = seed['expansion'].advance(seed['state'], seed['at'], step)
        seed['at'] = step
        v, w = seed['state'].v, seed['state'].w
        # v is the linearised net's displacement (as it trains, full batch),
        # so D Theta[v] is also the K^(3) term: one derivative fewer.
        k3, k4 = self._taylor(params_0, v, probe)
        return (k3, *taylor, np.asarray(k3) + np.asarray(k4) / 2
                + np.asarray(self._derivative(params_0, w, probe)))
