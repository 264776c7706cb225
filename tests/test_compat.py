"""Tests of :mod:`ntkexp.compat`: neural-tangents 0.6.5 on current JAX.

Every test checks values, not just that calls succeed: closed forms for the
infinite-width kernels and the kernel-regression predictors, agreement of the
three empirical-NTK implementations, and first/second-order behaviour of
``nt.linearize`` / ``nt.taylor_expand``.
"""

import importlib.util
import math
import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ntkexp  # noqa: F401  (installs the compatibility layer)
from ntkexp import compat
import neural_tangents as nt
from neural_tangents import stax

JC = nt.NtkImplementation.JACOBIAN_CONTRACTION
VP = nt.NtkImplementation.NTK_VECTOR_PRODUCTS
SD = nt.NtkImplementation.STRUCTURED_DERIVATIVES


def _keys(n, seed=0):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# --- import hygiene -----------------------------------------------------------


def test_import_leaves_tensorflow_out():
    """``import ntkexp`` (and using nt) must not import TensorFlow."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(ntkexp.__file__)))
    code = (
        'import sys, ntkexp, neural_tangents as nt\n'
        'from neural_tangents import stax\n'
        'nt.empirical_ntk_fn; nt.predict.gradient_descent_mse\n'
        'bad = sorted(m for m in sys.modules if m.split(".")[0] in '
        '("tensorflow", "tf2jax"))\n'
        'print(bad); assert not bad, bad\n')
    path = os.pathsep.join(p for p in (root, os.environ.get('PYTHONPATH')) if p)
    env = dict(os.environ, PYTHONPATH=path, JAX_PLATFORMS='cpu')
    result = subprocess.run([sys.executable, '-c', code], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_jax_namespaces_untouched():
    """The shims live in ntkexp.compat; JAX modules get no new attributes."""
    assert not hasattr(jax.core, 'lattice_join')
    assert not hasattr(jax.interpreters.ad, 'transpose_eqn')
    assert not hasattr(jax.interpreters.ad, 'linearize') or (
        jax.interpreters.ad.linearize is not compat.jax_ad.linearize)


def _nt_source(module):
    with open(importlib.util.find_spec(module).origin, encoding='utf-8') as f:
        return f.read()


def test_every_rewrite_matches_installed_source():
    modules = sorted({rw.module for rw in compat._REWRITES})
    for module in modules:
        new = compat._rewrite(module, _nt_source(module))
        compile(new, module, 'exec')
        assert new != _nt_source(module)


def test_wrong_neural_tangents_version_is_a_clear_import_error():
    module = 'neural_tangents._src.empirical'
    source = _nt_source(module).replace('from jax.util import ', 'from x import ')
    with pytest.raises(ImportError, match=r'neural-tangents==0\.6\.5'):
        compat._rewrite(module, source)


# --- infinite-width kernels ---------------------------------------------------


def _arccos_relu_ntk(x1, x2, w_std, b_std):
    """NNGP and NTK of Dense -> Relu -> Dense (NTK parameterisation)."""
    d = x1.shape[0]
    k11 = w_std**2 * x1 @ x1 / d + b_std**2
    k22 = w_std**2 * x2 @ x2 / d + b_std**2
    k12 = w_std**2 * x1 @ x2 / d + b_std**2
    theta = math.acos(np.clip(k12 / math.sqrt(k11 * k22), -1, 1))
    relu = math.sqrt(k11 * k22) / (2 * math.pi) * (
        math.sin(theta) + (math.pi - theta) * math.cos(theta))
    relu_dot = (math.pi - theta) / (2 * math.pi)
    nngp = w_std**2 * relu + b_std**2
    ntk = nngp + w_std**2 * relu_dot * k12
    return nngp, ntk


def test_relu_kernel_matches_arccos_closed_form():
    w_std, b_std = 1.3, 0.2
    _, _, kernel_fn = stax.serial(
        stax.Dense(512, w_std, b_std), stax.Relu(), stax.Dense(1, w_std, b_std))
    x = np.array([[1.0, 0.5, -0.3], [0.2, -1.1, 0.4]])
    k = kernel_fn(x[:1], x[1:], ('nngp', 'ntk'))
    nngp, ntk = _arccos_relu_ntk(x[0], x[1], w_std, b_std)
    np.testing.assert_allclose(float(k.nngp[0, 0]), nngp, rtol=1e-5)
    np.testing.assert_allclose(float(k.ntk[0, 0]), ntk, rtol=1e-5)
    k_jit = jax.jit(kernel_fn, static_argnames='get')(x[:1], x[1:], 'ntk')
    np.testing.assert_allclose(k_jit, k.ntk, rtol=1e-6)


def test_batch_equals_unbatched_kernel():
    _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    k1, k2 = _keys(2)
    x1 = jax.random.normal(k1, (4, 3))
    x2 = jax.random.normal(k2, (6, 3))
    full = kernel_fn(x1, x2, ('nngp', 'ntk'))
    for store_on_device in (True, False):
        batched = nt.batch(kernel_fn, batch_size=2,
                           store_on_device=store_on_device)
        out = batched(x1, x2, ('nngp', 'ntk'))
        np.testing.assert_allclose(out.nngp, full.nngp, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out.ntk, full.ntk, rtol=1e-5, atol=1e-7)


def test_monte_carlo_kernel_close_to_analytic_for_wide_net():
    """Sample averages over width-512 hidden layers converge to the kernels.

    The NNGP estimate averages readout weights over output channels, so it
    needs many of them; the NTK is dominated by the (wide) hidden layer.
    """
    x = jax.random.normal(_keys(1)[0], (3, 4))
    for out_width, get, n_samples in ((2048, 'nngp', 16), (64, 'ntk', 4)):
        init_fn, apply_fn, kernel_fn = stax.serial(
            stax.Dense(512, 1.5, 0.1), stax.Relu(),
            stax.Dense(out_width, 1.5, 0.1))
        mc = nt.monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(1),
                                      n_samples=n_samples, vmap_axes=0,
                                      implementation=SD)
        assert _rel_err(mc(x, None, get), kernel_fn(x, None, get)) < 0.1


# --- empirical NTK: structured derivatives ----------------------------------


def _fc(param):
    return stax.serial(
        stax.Dense(8, b_std=0.1, parameterization=param), stax.Relu(),
        stax.Dense(8, b_std=0.1, parameterization=param), stax.Erf(),
        stax.Dense(3, parameterization=param))


def _cnn(param):
    return stax.serial(
        stax.Conv(4, (2, 2), padding='SAME', b_std=0.1,
                  parameterization=param),
        stax.Gelu(), stax.AvgPool((2, 2)),
        stax.FanOut(2),
        stax.parallel(stax.Identity(),
                      stax.serial(stax.Relu(),
                                  stax.Conv(4, (1, 1), parameterization=param))),
        stax.FanInSum(), stax.LayerNorm(axis=(1, 2, 3)),
        stax.Conv(4, (2, 2), parameterization=param),
        stax.GlobalAvgPool(), stax.Dense(2, parameterization=param))


def _sd_vs_jc(net, shape, dtype, tol, trace_axes, vmap_axes):
    """Structured-derivatives NTK == Jacobian-contraction NTK, x2=None and not.

    A ``No Jacobian rule found`` warning (the structured rules were not used
    for a parameter-consuming primitive) fails the test.
    """
    init_fn, apply_fn, _ = net
    k1, k2, k3 = _keys(3)
    x1 = jax.random.normal(k1, shape, dtype)
    x2 = jax.random.normal(k2, (shape[0] + 1,) + shape[1:], dtype)
    _, params = init_fn(k3, shape)
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), params)
    kw = dict(trace_axes=trace_axes, vmap_axes=vmap_axes)
    jc = nt.empirical_ntk_fn(apply_fn, implementation=JC, **kw)
    sd = nt.empirical_ntk_fn(apply_fn, implementation=SD, **kw)

    @jax.jit
    def both(x1, x2, params):
        return (jc(x1, None, params), sd(x1, None, params),
                jc(x1, x2, params), sd(x1, x2, params))

    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='No Jacobian rule')
        ref_11, sd_11, ref_12, sd_12 = both(x1, x2, params)
    assert sd_11.dtype == sd_12.dtype == dtype
    assert _rel_err(sd_11, ref_11) < tol
    assert _rel_err(sd_12, ref_12) < tol


@pytest.mark.parametrize('param, trace_axes, vmap_axes', [
    ('ntk', (), 0), ('standard', (-1,), None)])
def test_structured_derivatives_fc(param, trace_axes, vmap_axes):
    _sd_vs_jc(_fc(param), (3, 5), jnp.float32, 1e-5, trace_axes, vmap_axes)


def test_structured_derivatives_cnn_resnet_layernorm():
    _sd_vs_jc(_cnn('ntk'), (2, 4, 4, 2), jnp.float32, 1e-5, (), 0)


def test_structured_derivatives_float64():
    with jax.enable_x64(True):
        _sd_vs_jc(_cnn('standard'), (2, 4, 4, 2), jnp.float64, 1e-10, (-1,),
                  None)


def test_structured_derivatives_through_split_jit_and_remat():
    """``split`` (new in JAX) and call primitives inside the network."""

    def apply_fn(params, x):
        a, b = jnp.split(params['w'], 2, axis=1)
        h = jax.jit(jnp.tanh)(x @ a) + jax.checkpoint(jnp.sin)(x @ b)
        return h @ params['v'][1:]

    k1, k2, k3 = _keys(3)
    params = {'w': jax.random.normal(k1, (4, 6)),
              'v': jax.random.normal(k2, (4, 2))}
    x = jax.random.normal(k3, (3, 4))
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='No Jacobian rule')
        sd = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=SD)(
            x, None, params)
    ref = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=JC)(
        x, None, params)
    assert _rel_err(sd, ref) < 1e-5


@pytest.mark.parametrize('fwd', [False, True])
def test_structured_derivatives_without_rules(fwd):
    """The debugging paths: no structure/Jacobian rules, forward or reverse.

    Per-primitive Jacobians then go through ``jax_ad.jvp_eqn`` /
    ``transpose_eqn``, including neural-tangents' special-cased ``reshape``
    (its cotangent has the input shape).
    """

    def apply_fn(params, x):
        h = jnp.tanh(x @ params['w'] + params['b'].reshape(1, -1))
        return h @ params['v'] + params['c'].reshape(1, -1)

    k1, k2, k3, k4, k5 = _keys(5)
    params = {'w': jax.random.normal(k1, (4, 6)),
              'b': jax.random.normal(k2, (6,)),
              'v': jax.random.normal(k3, (6, 5)),
              'c': jax.random.normal(k4, (5,))}
    x = jax.random.normal(k5, (3, 4))
    kw = dict(trace_axes=(), vmap_axes=0)
    ref = nt.empirical_ntk_fn(apply_fn, implementation=JC, **kw)(x, None, params)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # "No Jacobian rule" is expected here.
        sd = nt.empirical_ntk_fn(apply_fn, implementation=SD, _j_rules=False,
                                 _s_rules=False, _fwd=fwd, **kw)(x, None, params)
    assert _rel_err(sd, ref) < 1e-5


def test_empirical_kernel_fn_and_ntk_vp_fn():
    init_fn, apply_fn, _ = _fc('ntk')
    k1, k2, k3, k4 = _keys(4)
    x1 = jax.random.normal(k1, (3, 5))
    x2 = jax.random.normal(k2, (2, 5))
    _, params = init_fn(k3, x1.shape)
    get = ('nngp', 'ntk')
    kernel_fns = [nt.empirical_kernel_fn(apply_fn, implementation=impl,
                                         vmap_axes=0) for impl in (JC, VP, SD)]
    full_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=SD)
    cotangents = jax.random.normal(k4, (2, 3))

    @jax.jit
    def run(x1, x2, params, cotangents):
        kernels = [k(x1, x2, get, params) for k in kernel_fns]
        vp = nt.empirical_ntk_vp_fn(apply_fn, x1, x2, params)(cotangents)
        return kernels, full_fn(x1, x2, params), vp

    (ref, *others), full, vp = run(x1, x2, params, cotangents)
    for out in others:
        np.testing.assert_allclose(out.nngp, ref.nngp, rtol=1e-5, atol=1e-6)
        assert _rel_err(out.ntk, ref.ntk) < 1e-5
    # full has shape (N1, N2, C, C).
    expected = jnp.einsum('ijab,jb->ia', full, cotangents)
    np.testing.assert_allclose(vp, expected, rtol=1e-4, atol=1e-5)


# --- linearisation ------------------------------------------------------------


def test_linearize_and_taylor_expand_orders():
    with jax.enable_x64(True):
        init_fn, apply_fn, _ = stax.serial(stax.Dense(16), stax.Erf(),
                                           stax.Dense(2))
        k1, k2, k3 = _keys(3)
        x = jax.random.normal(k1, (4, 3), jnp.float64)
        _, params = init_fn(k2, x.shape)
        params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64),
                                        params)
        leaves, tree = jax.tree_util.tree_flatten(params)
        direction = jax.tree_util.tree_unflatten(
            tree, [jax.random.normal(k, l.shape, jnp.float64)
                   for k, l in zip(jax.random.split(k3, len(leaves)), leaves)])
        f_lin = nt.linearize(apply_fn, params)
        f_2 = nt.taylor_expand(apply_fn, params, 2)

        def at(eps):
            return jax.tree_util.tree_map(lambda p, d: p + eps * d, params,
                                          direction)

        f0, jvp = jax.jvp(lambda p: apply_fn(p, x), (params,), (direction,))
        np.testing.assert_allclose(f_lin(at(0.3), x), f0 + 0.3 * jvp,
                                   rtol=1e-12, atol=1e-12)
        errs_lin = [float(jnp.max(jnp.abs(f_lin(at(e), x) - apply_fn(at(e), x))))
                    for e in (1e-2, 5e-3)]
        errs_2 = [float(jnp.max(jnp.abs(f_2(at(e), x) - apply_fn(at(e), x))))
                  for e in (1e-2, 5e-3)]
        assert 3.5 < errs_lin[0] / errs_lin[1] < 4.5  # O(eps^2)
        assert 7.0 < errs_2[0] / errs_2[1] < 9.0  # O(eps^3)


# --- predictions ----------------------------------------------------------------


@pytest.fixture(name='problem')
def _problem():
    """A tiny regression problem with float64 kernels (x64 enabled inside)."""
    with jax.enable_x64(True):
        _, _, kernel_fn = stax.serial(stax.Dense(64, 1.5, 0.1), stax.Relu(),
                                      stax.Dense(1, 1.5, 0.1))
        k1, k2, k3 = _keys(3)
        x_train = jax.random.normal(k1, (6, 3), jnp.float64)
        y_train = jax.random.normal(k2, (6, 1), jnp.float64)
        x_test = jax.random.normal(k3, (4, 3), jnp.float64)
        k_tt = kernel_fn(x_train, None, ('nngp', 'ntk'))
        k_st = kernel_fn(x_test, x_train, ('nngp', 'ntk'))
        k_ss = kernel_fn(x_test, None, ('nngp', 'ntk'))
        yield dict(kernel_fn=kernel_fn, x_train=x_train, y_train=y_train,
                   x_test=x_test, k_tt=k_tt, k_st=k_st, k_ss=k_ss)


def _reg(k, diag_reg):
    return np.asarray(k) + diag_reg * np.trace(k) / k.shape[0] * np.eye(
        k.shape[0])


def test_gradient_descent_mse_closed_forms(problem):
    p = problem
    k, k_st, y = np.asarray(p['k_tt'].ntk), np.asarray(p['k_st'].ntk), \
        np.asarray(p['y_train'])
    predict = nt.predict.gradient_descent_mse(p['k_tt'].ntk, p['y_train'],
                                              diag_reg=1e-3)
    # t = inf: kernel regression.
    _, fx_test = predict(None, 0., 0., p['k_st'].ntk)
    expected = k_st @ np.linalg.solve(_reg(k, 1e-3), y)
    np.testing.assert_allclose(fx_test, expected, rtol=1e-8, atol=1e-10)
    # finite t on the training set: f_t = y + exp(-t K / N) (f_0 - y).
    predict = nt.predict.gradient_descent_mse(p['k_tt'].ntk, p['y_train'])
    t = 2.0
    fx_train = predict(t, jnp.zeros_like(p['y_train']))
    expected = y - scipy.linalg.expm(-t * k / y.size) @ y
    np.testing.assert_allclose(fx_train, expected, rtol=1e-8, atol=1e-10)

    # Predictors built inside jit / vmap (kernels are tracers there).
    def train_at(k_tt, t):
        predict = nt.predict.gradient_descent_mse(k_tt, p['y_train'])
        return predict(t, jnp.zeros_like(p['y_train']))

    np.testing.assert_allclose(jax.jit(train_at)(k, t), expected, rtol=1e-8,
                               atol=1e-10)
    batched = jax.vmap(train_at, (0, None))(jnp.stack([k, k]), t)
    np.testing.assert_allclose(batched[1], expected, rtol=1e-8, atol=1e-10)


def test_gradient_descent_ode_matches_mse_and_momentum_ode(problem):
    p = problem
    k, y = np.asarray(p['k_tt'].ntk), np.asarray(p['y_train'])
    loss = lambda fx, y_hat: 0.5 * jnp.mean((fx - y_hat)**2)
    t = 1.5
    gd = nt.predict.gradient_descent(loss, p['k_tt'].ntk, p['y_train'])
    mse = nt.predict.gradient_descent_mse(p['k_tt'].ntk, p['y_train'])
    np.testing.assert_allclose(gd(t, jnp.zeros_like(p['y_train'])),
                               mse(t, jnp.zeros_like(p['y_train'])),
                               rtol=1e-6, atol=1e-8)
    # Momentum: with lr, m the ODE is f'' = m' f' - K (f - y) / N in time
    # tau = t sqrt(lr), m' = (m - 1) / sqrt(lr); solve it with expm.
    lr, m = 0.5, 0.9
    gdm = nt.predict.gradient_descent(loss, p['k_tt'].ntk, p['y_train'],
                                      learning_rate=lr, momentum=m)
    n = k.shape[0]
    damping = (m - 1) / math.sqrt(lr)
    a = np.block([[np.zeros((n, n)), np.eye(n)],
                  [-k / y.size, damping * np.eye(n)]])
    u0 = np.concatenate([-y, np.zeros_like(y)])  # u = f - y, f(0) = 0
    u_t = scipy.linalg.expm(a * t * math.sqrt(lr)) @ u0
    np.testing.assert_allclose(gdm(t, jnp.zeros_like(p['y_train'])),
                               u_t[:n] + y, rtol=1e-5, atol=1e-7)


def test_gp_inference_and_ensemble_closed_forms(problem):
    p = problem
    y = np.asarray(p['y_train'])
    diag_reg = 1e-3
    nngp_tt = _reg(p['k_tt'].nngp, diag_reg)
    nngp_st, nngp_ss = np.asarray(p['k_st'].nngp), np.asarray(p['k_ss'].nngp)
    mean = nngp_st @ np.linalg.solve(nngp_tt, y)
    cov = nngp_ss - nngp_st @ np.linalg.solve(nngp_tt, nngp_st.T)
    ntk_mean = np.asarray(p['k_st'].ntk) @ np.linalg.solve(
        _reg(p['k_tt'].ntk, diag_reg), y)

    gp = nt.predict.gp_inference(p['k_tt'], p['y_train'], diag_reg=diag_reg)
    out = gp(('nngp', 'ntk'), k_test_train=p['k_st'], k_test_test=p['k_ss'])
    np.testing.assert_allclose(out.nngp.mean, mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out.nngp.covariance, cov, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out.ntk.mean, ntk_mean, rtol=1e-8, atol=1e-10)

    ens = nt.predict.gradient_descent_mse_ensemble(
        p['kernel_fn'], p['x_train'], p['y_train'], diag_reg=diag_reg)
    out = ens(None, p['x_test'], 'nngp', compute_cov=True)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out.covariance, cov, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ens(None, p['x_test'], 'ntk'), ntk_mean,
                               rtol=1e-8, atol=1e-10)


def test_max_learning_rate(problem):
    k = np.asarray(problem['k_tt'].ntk)
    expected = 2 * k.shape[0] / np.linalg.eigvalsh(k)[-1]
    lr = nt.predict.max_learning_rate(problem['k_tt'].ntk)
    np.testing.assert_allclose(lr, expected, rtol=1e-8)
    lr = nt.predict.max_learning_rate(problem['k_tt'].ntk, momentum=0.5)
    np.testing.assert_allclose(lr, 1.5 * expected, rtol=1e-8)
