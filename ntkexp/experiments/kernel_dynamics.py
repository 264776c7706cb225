"""The infinite-width references of a trained network: the function-space
dynamics its analytic NTK gives (Lee et al. 2019, eqs. 9-10).

``reference_fn`` is what ``experiment=finite_width`` compares a finite
network with at every evaluation step: the NTK dynamics of
``nt.predict.gradient_descent_mse`` (MSE, GD / SGD),
``nt.predict.gradient_descent`` (cross-entropy, momentum) or, with L2 towards the initialisation, the
regularised flow :func:`l2_to_init_flow` (Lee et al. 2020, Sec. 3).
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np


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
        :func:`reference_fn`'s, in float64.
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


def reference_fn(loss_name: str, optimizer: str, momentum: float,
                  k_train_train: np.ndarray, y_train: np.ndarray, lr: float,
                  loss: Callable, l2: float = 0.0) -> Callable:
    """The infinite-width function-space dynamics of the training run.

    Returns ``predict(steps, fx_train_0, fx_test_0, k_test_train) ->
    (fx_train, fx_test)`` with a leading axis over ``steps``: the closed form
    ``nt.predict.gradient_descent_mse`` for MSE with GD / SGD, else the ODE of
    ``nt.predict.gradient_descent`` (cross-entropy, momentum); with ``l2 >
    0`` (L2 towards the initialisation; MSE, GD / SGD only, which
    :func:`ntkexp.experiments.finite_width.validate` checks)
    :func:`l2_to_init_flow`.
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
