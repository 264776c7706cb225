"""The Neural Tangent Hierarchy's correction to the NTK (``experiment=nth``).

``ntk_derivative`` and ``ntk_taylor_terms`` are checked against central
finite differences of the empirical NTK (float64); ``nth_values`` on hand-made
kernels; the experiment end to end on digits, where after one step of gradient
descent the linearised and the actual displacement are the same gradient (so
the hierarchy's and the first-order Taylor residuals agree), and a small step
leaves a second-order Taylor residual far below the first-order one; the
figure's slopes on rows with a known power law.
"""

from __future__ import annotations

import itertools

import hydra
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from neural_tangents import stax

import ntkexp  # noqa: F401  (neural-tangents on current JAX)

from ntkexp import cli
from ntkexp import ntk_drift
from ntkexp import runner
from ntkexp.experiments import hierarchy
from ntkexp.plots import finite_width as fw_plots


def _net_and_direction():
    init_fn, apply_fn, _ = stax.serial(stax.Dense(24), stax.Erf(), stax.Dense(24),
                                       stax.Gelu(), stax.Dense(3))
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (5, 4), jnp.float64)
    _, params = init_fn(key, x.shape)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    tangent = tree.unflatten([jax.random.normal(k, a.shape, a.dtype)
                              for k, a in zip(keys, leaves)])
    return apply_fn, params, tangent, x


def test_ntk_derivatives_match_finite_differences():
    with jax.enable_x64(True):
        apply_fn, params, tangent, x = _net_and_direction()
        ntk = ntk_drift.empirical_ntk_fn(apply_fn, 1)

        def at(eps):
            return np.asarray(ntk(x, None, jax.tree_util.tree_map(
                lambda p, v: p + eps * v, params, tangent)))

        first = np.asarray(jax.jit(lambda p, v: ntk_drift.ntk_derivative(
            apply_fn, p, v, x))(params, tangent))
        eps = 1e-5
        np.testing.assert_allclose(first, (at(eps) - at(-eps)) / (2 * eps),
                                   atol=1e-8 * np.abs(first).max())
        np.testing.assert_allclose(first, first.T)
        d1, d2 = jax.jit(lambda p, v: ntk_drift.ntk_taylor_terms(
            apply_fn, p, v, x))(params, tangent)
        np.testing.assert_allclose(np.asarray(d1), first, rtol=1e-12, atol=0)
        eps = 1e-3
        second = (at(eps) + at(-eps) - 2 * at(0.0)) / eps ** 2
        np.testing.assert_allclose(np.asarray(d2), second,
                                   atol=1e-4 * np.abs(second).max())
        # Theta(p + v) to third order: the two terms leave O(|v|^3).
        small = 1e-2
        exact = at(small) - at(0.0)
        taylor = small * first + small ** 2 * np.asarray(d2) / 2
        assert np.linalg.norm(exact - taylor) < 1e-3 * np.linalg.norm(exact)


def _flat(tree):
    return np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(tree)])


def _second_order_misses(apply_fn, params, x, y, lr, steps, loss, optimizer,
                         l2=0.0, center=None):
    """``second_order_gd``'s ``(v, w)`` after ``steps`` against the linearised
    net's and the net's own full-batch training (``training.Trainer`` with
    the same loss, optimiser and penalty): what ``v`` and ``v + w`` miss of
    the actual displacement, what the ``nth2`` NTK misses of the actual
    change and that change's size."""
    from ntkexp import training
    momentum = 0.9 if optimizer == 'momentum' else 0.0
    expansion = ntk_drift.second_order_gd(apply_fn, params, x, y, lr, loss=loss,
                                          momentum=momentum, l2=l2, center=center)
    state = expansion.advance(expansion.init(), 0, steps // 2)
    state = expansion.advance(state, steps // 2, steps)  # resumes where it was
    v, w = state.v, state.w
    penalty = dict(l2=l2, center=center)
    lin = training.Trainer(training.linearized_apply_fn(apply_fn), loss,
                           training.make_optimizer(optimizer, lr, momentum), x, y,
                           consts=(params,), **penalty)
    v_lin = lin.advance(lin.init(params), steps).params
    np.testing.assert_allclose(_flat(v) + _flat(params), _flat(v_lin),
                               rtol=0, atol=1e-12)
    net = training.Trainer(apply_fn, loss, training.make_optimizer(
        optimizer, lr, momentum), x, y, **penalty)
    trained = net.advance(net.init(params), steps).params
    moved = _flat(trained) - _flat(params)
    d1, d2 = ntk_drift.ntk_taylor_terms(apply_fn, params, v, x)
    predicted = (np.asarray(d1) + np.asarray(d2) / 2 + np.asarray(
        ntk_drift.ntk_derivative(apply_fn, params, w, x)))
    ntk = ntk_drift.empirical_ntk_fn(apply_fn, 1)
    change = np.asarray(ntk(x, None, trained)) - np.asarray(ntk(x, None, params))
    return (np.linalg.norm(moved - _flat(v)),
            np.linalg.norm(moved - _flat(v) - _flat(w)),
            np.linalg.norm(change - predicted), np.linalg.norm(change))


def _assert_second_order(misses, last_only=False):
    """Halving the displacement divides what ``v`` misses by 4, what ``v +
    w`` and the ``nth2`` NTK miss by 8 (``last_only``: from the second
    smallest displacement to the smallest); ``w`` is the bulk of ``v``'s
    miss."""
    misses = np.array(misses)
    first, second, kernel = (misses[:-1] / misses[1:]).T[:3, -1 if last_only else 0:]
    np.testing.assert_allclose(first, 4, rtol=0.15)
    np.testing.assert_allclose(second, 8, rtol=0.15)
    np.testing.assert_allclose(kernel, 8, rtol=0.15)
    assert np.all(misses[:, 1] < 0.2 * misses[:, 0])
    assert np.all(misses[:, 2] < 0.2 * misses[:, 3])


def test_second_order_gd_is_gradient_descent_to_second_order():
    """``second_order_gd``: ``v`` is the linearised net's gradient descent
    (the MSE, ``optax.sgd``, as ``training.Trainer`` runs it) to rounding;
    with the targets ``eps`` away from the outputs, actual gradient descent
    leaves ``O(eps^2)`` to ``v`` and ``O(eps^3)`` to ``v + w`` (halving
    ``eps`` divides them by 4 and 8), and the NTK ``Theta_0 + D Theta[v +
    w] + D^2 Theta[v, v] / 2`` misses the actual one by ``O(eps^3)``."""
    from ntkexp import training
    with jax.enable_x64(True):
        apply_fn, params, _, x = _net_and_direction()
        target = jnp.asarray(np.random.RandomState(2).randn(5, 3))
        f0 = apply_fn(params, x)
        _assert_second_order([_second_order_misses(
            apply_fn, params, x, f0 + eps * (target - f0), 2.0, 20,
            training.mse_loss, 'gd') for eps in (0.1, 0.05, 0.025)])


@pytest.mark.parametrize('loss_name,optimizer,l2,center', [
    ('xent', 'gd', 0.0, None), ('mse', 'momentum', 0.0, None),
    ('xent', 'momentum', 0.5, 'init'), ('mse', 'gd', 0.5, 'zero')])
def test_second_order_training_with_any_loss_momentum_and_l2(loss_name, optimizer,
                                                             l2, center):
    """The same expansion for the cross-entropy, heavy-ball momentum and an L2
    penalty towards the initialisation or zero: ``v`` is the linearised net's
    own training to rounding, and with the learning rate (so the
    displacement) ``eps``, ``v`` misses ``O(eps^2)``, ``v + w`` and the
    ``nth2`` NTK ``O(eps^3)``. The ratios near 4 and 8 only for small rates:
    at 0.01 -> 0.005 -> 0.0025 (cross-entropy, momentum, L2 to init) they are
    3.67 -> 3.83, 6.88 -> 7.42 and 6.24 -> 6.99; the last is checked."""
    from ntkexp import training
    with jax.enable_x64(True):
        apply_fn, params, _, x = _net_and_direction()
        labels = np.array([0, 1, 2, 1, 0])
        y = (jnp.asarray(np.eye(3)[labels]) if loss_name == 'xent' else
             jnp.asarray(np.random.RandomState(2).randn(5, 3)))
        at = params if center == 'init' else None
        _assert_second_order([_second_order_misses(
            apply_fn, params, x, y, lr, 20, training.get_loss(loss_name),
            optimizer, l2, at) for lr in (0.01, 0.005, 0.0025)], last_only=True)


def test_nth_values_by_hand():
    k0 = np.array([[2.0, 1.0], [1.0, 2.0]])
    change = np.array([[0.1, 0.0], [0.0, -0.1]])
    first = 0.5 * change
    values = hierarchy.nth_values(k0 + change, k0, change_nth=2 * change,
                                     first=first, second=change)
    assert values['nth_drift'] == pytest.approx(2 * np.linalg.norm(change)
                                                / np.sqrt(10))
    assert values['nth_residual'] == pytest.approx(1.0)
    assert values['nth_cosine'] == pytest.approx(1.0)
    assert values['taylor1_residual'] == pytest.approx(0.5)
    assert values['taylor2_residual'] == pytest.approx(0.0, abs=1e-15)
    still = hierarchy.nth_values(k0, k0, change, first, change)
    assert np.isnan(still['nth_residual']) and np.isnan(still['nth_cosine'])
    assert 'nth2_residual' not in values
    both = hierarchy.nth_values(k0 + change, k0, 2 * change, first, change,
                                change_nth2=0.75 * change)
    assert both['nth2_residual'] == pytest.approx(0.25)
    assert both['nth2_drift'] == pytest.approx(0.75 * np.linalg.norm(change)
                                               / np.sqrt(10))


def _compose(tmp_path, *overrides):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        return hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false', 'experiment=nth',
            'dataset.n_train=24', 'dataset.n_test=16', 'experiment.probe_size=6',
            'experiment.seeds=[0]', 'experiment.eval_steps=[0,1,4]',
            'experiment.steps=4', *overrides])


def test_nth_experiment_runs(tmp_path):
    cfg = _compose(tmp_path, 'experiment.widths=[32]', 'experiment.lr_fraction=0.05')
    assert cfg.model.activation == 'erf' and cfg.experiment.nth
    frame = runner.run_job(cfg, tmp_path / 'run')
    value = frame.set_index(['metric', 'step'])['value']
    assert value[('nth_residual', 1)] == pytest.approx(value[('taylor1_residual', 1)],
                                                       rel=1e-6)
    # A small step: the second-order expansion leaves far less than the first.
    assert value[('taylor2_residual', 1)] < 0.2 * value[('taylor1_residual', 1)]
    assert value[('taylor2_residual', 1)] < 0.05
    assert 0.9 < value[('nth_cosine', 1)] <= 1.0
    assert value[('ntk_drift', 4)] > value[('ntk_drift', 1)] > 0
    assert ('nth_residual', 0) not in value.index
    # The hierarchy to K^(4): after one step gradient descent to second order
    # is the step itself (w = 0), so it is the second-order Taylor expansion;
    # after four it misses less than the K^(3) term.
    assert value[('nth2_residual', 1)] == pytest.approx(
        value[('taylor2_residual', 1)], rel=1e-6)
    assert value[('nth2_residual', 4)] < 0.5 * value[('nth_residual', 4)]


@pytest.mark.parametrize('overrides', [
    ('experiment.optimizer=momentum', 'experiment.l2=0.01',
     'experiment.l2_center=init'),
    ('experiment.loss=xent',),
    ('experiment.optimizer=sgd', 'experiment.batch_size=8')])
def test_nth_with_momentum_l2_or_minibatches(tmp_path, overrides):
    """The K^(3) term follows the linearised net's own path (equal to the
    first-order Taylor term after one step, when both displacements are the
    same step, and not after four). Full-batch momentum with L2 to init, and
    the cross-entropy, have the hierarchy to K^(4), equal to the second-order expansion after one step
    and better than the K^(3) term after four; mini-batches have no nth2
    rows."""
    cfg = _compose(tmp_path, 'experiment.widths=[32]', 'experiment.lr_fraction=0.05',
                   *overrides)
    frame = runner.run_job(cfg, tmp_path / 'run')
    value = frame.set_index(['metric', 'step'])['value']
    assert value[('nth_residual', 1)] == pytest.approx(value[('taylor1_residual', 1)],
                                                       rel=1e-6)
    assert value[('nth_residual', 4)] != pytest.approx(value[('taylor1_residual', 4)],
                                                       rel=1e-3)
    assert 0.9 < value[('nth_cosine', 4)] <= 1.0
    if 'experiment.batch_size=8' in overrides:
        assert not frame.metric.str.startswith('nth2').any()
    else:
        assert value[('nth2_residual', 1)] == pytest.approx(
            value[('taylor2_residual', 1)], rel=1e-6)
        assert value[('nth2_residual', 4)] < 0.5 * value[('nth_residual', 4)]


def test_nth2_rows_need_full_batch_training(caplog):
    assert hierarchy.second_order_applies(None, 24)
    assert hierarchy.second_order_applies(24, 24)
    with caplog.at_level('WARNING'):
        assert not hierarchy.second_order_applies(8, 24)
    assert ('no nth2 rows' in caplog.text and 'experiment.batch_size=8 of 24'
            in caplog.text)


def test_nth_needs_the_linearised_network(tmp_path):
    cfg = _compose(tmp_path, 'experiment.references=[]')
    with pytest.raises(runner.ConfigError, match='linearized in experiment.references'):
        runner.validate(cfg)


def test_nth_figure_slopes(tmp_path):
    rows = []
    for width, seed, step, act in itertools.product(
            (64, 256, 1024), (0, 1, 5), (1, 10), ('erf', 'relu')):
        base = dict(experiment='nth', model='fc', activation=act, width=width,
                    seed=seed, step=step, run_dir=act)
        for metric, value in (('nth_residual', 0.3), ('taylor1_residual', 0.2),
                              ('nth2_residual', 2.0 / width ** 0.5),
                              ('taylor2_residual', 5.0 / width),
                              ('ntk_drift', 2.0 / width), ('nth_drift', 3.0 / width),
                              ('nth_cosine', 0.99)):
            rows.append(dict(base, metric=metric, value=value * (
                1 + 0.01 * seed) * (2 if act == 'relu' else 1)))
    paths = fw_plots.plot_nth(pd.DataFrame(rows), tmp_path, 'nth')
    assert [p.name for p in paths] == ['nth_nth.png', 'nth_nth.pdf',
                                       'nth_nth_slopes.csv', 'nth_nth.csv']
    slopes = pd.read_csv(paths[2])
    assert sorted(set(slopes.activation)) == ['erf', 'relu']  # each line named
    slopes = slopes[slopes.activation == 'relu'].set_index('metric')['slope']
    assert slopes['taylor2_residual'] == pytest.approx(-1.0, abs=1e-9)
    assert slopes['nth_residual'] == pytest.approx(0.0, abs=1e-9)
    assert slopes['nth2_residual'] == pytest.approx(-0.5, abs=1e-9)
    assert slopes['ntk_drift'] == pytest.approx(-1.0, abs=1e-9)
    table = pd.read_csv(paths[3])
    assert set(table['step']) == {1, 10}
    row = table[(table.metric == 'taylor2_residual') & (table.width == 256)
                & (table.step == 10) & (table.activation == 'erf')]
    # The CSV holds 6 significant digits.
    assert row['mean'].item() == pytest.approx(5.0 / 256 * 1.02, rel=1e-5)
    assert row['median'].item() == pytest.approx(5.0 / 256 * 1.01, rel=1e-5)
    assert row['count'].item() == 3


def test_ntk_top_eigenvalue_is_the_full_ntks_and_exceeds_the_traced_ones():
    """Lanczos on ``J J^T`` equals the dense ``(n k) x (n k)`` NTK's largest
    eigenvalue; the traced NTK's is smaller for a narrow 3-output net, and the
    resulting learning rate is the linearised network's exact bound."""
    import neural_tangents as nt
    from ntkexp import training
    with jax.enable_x64(True):
        apply_fn, params, _, x = _net_and_direction()
        x = jnp.concatenate([x, -x, 2 * x])
        full = nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=1)(
            x, None, params)
        n, k = full.shape[0], full.shape[-1]
        dense = np.asarray(full).transpose(0, 2, 1, 3).reshape(n * k, n * k)
        want = np.linalg.eigvalsh(dense)[-1]
        got = training.ntk_top_eigenvalue(apply_fn, params, x)
        assert got == pytest.approx(want, rel=1e-8)
        traced = np.linalg.eigvalsh(np.asarray(ntk_drift.empirical_ntk_fn(
            apply_fn, 1)(x, None, params)))[-1]
        assert traced < 0.95 * want
        lr, bound = training.resolve_learning_rate(None, 0.5, None, n * k,
                                                   top_eigenvalue=got)
        assert bound == pytest.approx(2 * n * k / want, rel=1e-8)
        assert lr == pytest.approx(bound / 2)
