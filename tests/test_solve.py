"""Float64 kernel solves agree with neural-tangents' predict functions."""

import jax
import numpy as np
import pytest

import ntkexp  # noqa: F401
import neural_tangents as nt
from neural_tangents import stax

from ntkexp import solve


@pytest.fixture(scope='module')
def problem():
    rng = np.random.RandomState(0)
    x_train, x_test = rng.randn(20, 4), rng.randn(7, 4)
    y_train = rng.randn(20, 3)
    _, _, kernel_fn = stax.serial(stax.Dense(64, 1.5, 0.1), stax.Relu(),
                                  stax.Dense(3, 1.5, 0.1))
    with jax.enable_x64(True):
        k_tt = kernel_fn(x_train, None, ('nngp', 'ntk'))
        k_st = kernel_fn(x_test, x_train, ('nngp', 'ntk'))
        k_ss = kernel_fn(x_test, None, 'nngp')
    return dict(kernel_fn=kernel_fn, x_train=x_train, x_test=x_test,
                y_train=y_train, k_tt=k_tt, k_st=k_st, k_ss=np.asarray(k_ss))


@pytest.mark.parametrize('diag_reg', [0.0, 1e-3, 0.1])
@pytest.mark.parametrize('t', [0.5, 10.0, None])
def test_predictions_match_nt_gradient_descent_mse(problem, diag_reg, t):
    p = problem
    k_tt, k_st = np.asarray(p['k_tt'].ntk), np.asarray(p['k_st'].ntk)
    ours = solve.predict_t(k_tt, k_st, p['y_train'], diag_reg,
                           np.inf if t is None else t)
    with jax.enable_x64(True):
        predict_fn = nt.predict.gradient_descent_mse(k_tt, p['y_train'],
                                                     diag_reg=diag_reg)
        _, theirs = predict_fn(t, 0., 0., k_st)
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9)


def test_t_to_infinity_limit_and_t_zero(problem):
    p = problem
    k_tt, k_st = np.asarray(p['k_tt'].ntk), np.asarray(p['k_st'].ntk)
    inf = solve.predict_inf(k_tt, k_st, p['y_train'], 1e-3)
    late = solve.predict_t(k_tt, k_st, p['y_train'], 1e-3, 1e9)
    np.testing.assert_allclose(late, inf, rtol=1e-8)
    assert np.abs(solve.predict_t(k_tt, k_st, p['y_train'], 1e-3, 0.0)).max() == 0


def test_variances_match_nt_ensemble(problem):
    p = problem
    with jax.enable_x64(True):
        predict_fn = nt.predict.gradient_descent_mse_ensemble(
            p['kernel_fn'], p['x_train'], p['y_train'], diag_reg=1e-2)
        out = predict_fn(None, p['x_test'], ('nngp', 'ntk'),
                         compute_cov=True)
    k_tt, k_st, k_diag = p['k_tt'], p['k_st'], np.diag(p['k_ss'])
    nngp_var = solve.nngp_variance(np.asarray(k_tt.nngp), np.asarray(k_st.nngp),
                                   k_diag, 1e-2)
    ntk_var = solve.ntk_variance(np.asarray(k_tt.ntk), np.asarray(k_st.ntk),
                                 np.asarray(k_tt.nngp), np.asarray(k_st.nngp),
                                 k_diag, 1e-2)
    np.testing.assert_allclose(nngp_var, np.diag(out.nngp.covariance),
                               rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ntk_var, np.diag(out.ntk.covariance),
                               rtol=1e-6, atol=1e-10)
    assert np.all(nngp_var > 0) and np.all(ntk_var > 0)


def test_not_positive_definite_is_a_clear_error():
    k = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    # A float64 kernel: float64 would not help; a float32 one: it may.
    with pytest.raises(solve.KernelSolveError,
                       match='larger experiment.diag_reg .the kernel is already float64'):
        solve.predict_inf(k, k, np.ones((2, 1)), 0.0)
    with pytest.raises(solve.KernelSolveError, match='use precision=float64 and/or'):
        solve.predict_inf(k.astype(np.float32), k, np.ones((2, 1)), 0.0)
    with pytest.raises(solve.KernelSolveError, match='use precision=float64 and/or'):
        solve.predict_t(k.astype(np.float32), k, np.ones((2, 1)), 0.0, 1.0)
    with pytest.raises(solve.KernelSolveError, match='NaN'):
        solve.predict_inf(np.full((2, 2), np.nan), k, np.ones((2, 1)), 0.0)


def test_accuracy_and_mse():
    pred = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.5]])
    assert solve.accuracy(pred, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert solve.mse(pred, np.zeros_like(pred)) == pytest.approx(
        np.mean(pred ** 2))
    # One output (targets=regression, the label as a number): the nearest label.
    labels = np.array([0, 3, 7, 9])
    assert solve.accuracy(np.array([[0.2], [3.4], [6.6], [7.0]]), labels) == 0.75
    assert solve.accuracy(np.array([0.2, 3.4, 6.6, 9.1]), labels) == 1.0



def test_one_gradient_flow_serves_every_time_and_input_set(problem):
    """GradientFlow decomposes once; its predictions at several times, on the
    test and the training inputs, are nt.predict.gradient_descent_mse's
    (unregularised: on the training inputs neural-tangents' regularised flow
    predicts with the regularised kernel itself)."""
    p = problem
    k_tt, k_st = np.asarray(p['k_tt'].ntk), np.asarray(p['k_st'].ntk)
    flow = solve.GradientFlow(k_tt, p['y_train'], 0.0)
    with jax.enable_x64(True):
        predict_fn = nt.predict.gradient_descent_mse(k_tt, p['y_train'])
        for t in (0.3, 3.0, 300.0):
            train, test = predict_fn(t, 0., 0., k_st)
            np.testing.assert_allclose(flow.predict(k_st, t), test, rtol=1e-7,
                                       atol=1e-9)
            np.testing.assert_allclose(flow.predict(k_tt, t), train, rtol=1e-7,
                                       atol=1e-9)


def test_t_as_diag_reg_halves_both_filters_at_the_same_eigenvalue():
    """On a diagonal kernel (its eigenvalues on the diagonal) the ridge keeps
    l / (l + eps m) of the target along each eigenvector and the flow keeps
    1 - exp(-l t / N): at eps = t_as_diag_reg(t), both keep exactly one half
    at the eigenvalue l = eps m, more above it and less below it."""
    from ntkexp.experiments.kernel_regression import t_as_diag_reg  # pylint: disable=g-import-not-at-top
    t = 40.0
    y = np.ones((6, 2))
    # The flow halves where l t / N = ln 2; put an eigenvalue there.
    evals = np.array([0.01, 0.1, y.size * np.log(2) / t, 1.0, 10.0, 100.0])
    k = np.diag(evals)
    eps = t_as_diag_reg(t, y.size, float(np.mean(evals)))
    ridge = solve.predict_inf(k, k, y, eps)[:, 0]
    flow = solve.predict_t(k, k, y, 0.0, t)[:, 0]
    np.testing.assert_allclose(ridge, evals / (evals + eps * np.mean(evals)))
    np.testing.assert_allclose(flow, -np.expm1(-evals * t / y.size))
    np.testing.assert_allclose([ridge[2], flow[2]], [0.5, 0.5], rtol=1e-12)
    others = np.arange(6) != 2  # below / above it: both less / more
    assert (np.sign(ridge - 0.5) == np.sign(flow - 0.5))[others].all()
    assert (ridge[:2] < 0.5).all() and (ridge[3:] > 0.5).all()
