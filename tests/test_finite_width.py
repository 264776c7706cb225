"""Experiment ``finite_width``: training loop, references, NTK drift, configs.

Checks with real values: the learning-rate bound of ``nt.predict`` (GD is
stable just below it and diverges just above), the time convention ``t = lr *
steps`` against ``nt.predict`` for a linear model (whose NTK is exact), the
NTK slice against ``nt.empirical_ntk_fn``, the linearised network against the
network early in training, and, end to end through ``run_job``, that the
distance to the infinite-width NTK dynamics and the NTK drift shrink with the
width. Sizes are tiny; the whole file takes well under a minute alone on 2
cores.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import ntkexp  # noqa: F401  (before neural_tangents)
import neural_tangents as nt
from ntkexp import cli
from ntkexp import collect
from ntkexp import ntk_drift
from ntkexp import runner
from ntkexp import training
from ntkexp.experiments import finite_width
from ntkexp.experiments import finite_width_rows as fw_rows
from ntkexp.experiments import kernel_dynamics
from ntkexp.models import cnn, fc
from ntkexp.plots import drift_tables
from ntkexp.plots import finite_width as fw_plots


def compose(tmp_path: Path, *overrides: str):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                     version_base='1.3'):
        return hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false',
            'kernel.block_size=64', *overrides])  # no block-size measurement


def linear_problem(n: int = 8, d: int = 5, seed: int = 0):
    """``f(w, x) = x @ w``: its NTK is exactly ``X X^T`` at every width."""
    rng = np.random.RandomState(seed)
    x = jnp.asarray(rng.randn(n, d))
    y = jnp.asarray(rng.randn(n, 1))
    return (lambda w, x: x @ w), x, y, jnp.zeros((d, 1)), x @ x.T


# ----------------------------------------------------------------------------
# training.py


def test_max_learning_rate_is_the_gd_stability_bound():
    with jax.enable_x64(True):
        apply_fn, x, y, w0, kernel = linear_problem()
        top = float(np.linalg.eigvalsh(np.asarray(kernel))[-1])
        max_lr = training.max_learning_rate(kernel, y.size)
        assert max_lr == pytest.approx(2 * y.size / top, rel=1e-10)
        assert training.max_learning_rate(kernel, y.size, momentum=0.9) == \
            pytest.approx(2 * 1.9 * y.size / top, rel=1e-10)
        losses = {}
        for fraction in (0.95, 1.05):
            lr, resolved_max = training.resolve_learning_rate(
                None, fraction, kernel, y.size)
            assert resolved_max == pytest.approx(max_lr)
            assert lr == pytest.approx(fraction * max_lr)
            trainer = training.Trainer(apply_fn, training.mse_loss,
                                       training.make_optimizer('gd', lr), x, y)
            state = trainer.advance(trainer.init(w0), 400)
            losses[fraction] = float(training.mse_loss(apply_fn(state.params, x), y))
        initial = float(training.mse_loss(apply_fn(w0, x), y))
        assert losses[0.95] < initial
        assert losses[1.05] > 1e3 * initial  # diverged
        # A fixed lr is used as is when no fraction is given.
        assert training.resolve_learning_rate(0.3, None, kernel, y.size)[0] == 0.3


@pytest.mark.parametrize('optimizer', ['gd', 'momentum'])
def test_time_convention_matches_nt_predict(optimizer):
    """s steps of lr match nt.predict at t = s (learning_rate=lr), not t = s/2."""
    with jax.enable_x64(True):
        apply_fn, x, y, w0, kernel = linear_problem()
        momentum = 0.9 if optimizer == 'momentum' else 0.0
        # Euler / heavy-ball discretisation errors vanish as lr -> 0.
        fraction = 0.01 if optimizer == 'gd' else 0.001
        lr = fraction * training.max_learning_rate(kernel, y.size, momentum)
        trainer = training.Trainer(
            apply_fn, training.mse_loss,
            training.make_optimizer(optimizer, lr, 0.9), x, y)
        steps = 200 if optimizer == 'gd' else 100
        f = apply_fn(trainer.advance(trainer.init(w0), steps).params, x)
        if optimizer == 'gd':
            predict = nt.predict.gradient_descent_mse(kernel, y, learning_rate=lr)
        else:
            predict = nt.predict.gradient_descent(
                training.mse_loss, kernel, y, learning_rate=lr, momentum=0.9)
        at_t = predict(float(steps), jnp.zeros_like(y))
        at_half = predict(float(steps) / 2, jnp.zeros_like(y))
        moved = float(jnp.linalg.norm(f))
        assert float(jnp.linalg.norm(f - at_t)) < 0.02 * moved
        assert float(jnp.linalg.norm(f - at_half)) > 0.1 * moved


def test_sgd_batches_are_shared_and_change_the_path():
    with jax.enable_x64(True):
        apply_fn, x, y, w0, kernel = linear_problem(n=16)
        lr = 0.2 * training.max_learning_rate(kernel, y.size)
        opt = training.make_optimizer('sgd', lr)
        key = jax.random.PRNGKey(3)
        runs = [training.Trainer(apply_fn, training.mse_loss, opt, x, y, 4, key)
                .advance(training.Trainer(apply_fn, training.mse_loss, opt, x, y,
                                          4, key).init(w0), 30).params
                for _ in range(2)]
        full = training.Trainer(apply_fn, training.mse_loss, opt, x, y)
        full_params = full.advance(full.init(w0), 30).params
        np.testing.assert_allclose(runs[0], runs[1])
        assert float(jnp.linalg.norm(runs[0] - full_params)) > 1e-3
        # ... but SGD still lowers the loss like GD does.
        assert float(training.mse_loss(apply_fn(runs[0], x), y)) < \
            float(training.mse_loss(apply_fn(w0, x), y))


def test_xent_loss_matches_definition():
    fx = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = -np.mean([np.log(np.exp(2) / np.exp([1, 2, 0.5]).sum()),
                         np.log(np.exp(3) / np.exp([0, -1, 3]).sum())])
    assert float(training.xent_loss(fx, y)) == pytest.approx(expected, rel=1e-6)
    assert float(training.mse_loss(fx, y)) == pytest.approx(
        0.5 * float(np.mean((np.asarray(fx) - np.asarray(y)) ** 2)))


def test_linearized_network_matches_the_network_early():
    """Lee et al. 2019: f and f_lin agree to second order in the step."""
    with jax.enable_x64(True):
        init_fn, apply_fn, kernel_fn = fc(depth=2, width=256, out_dim=2)
        x = jnp.asarray(np.random.RandomState(0).randn(16, 3))
        y = jnp.asarray(np.random.RandomState(1).randn(16, 2))
        _, params0 = init_fn(jax.random.PRNGKey(0), x.shape)
        lr = 0.5 * training.max_learning_rate(
            np.asarray(kernel_fn(x, None, 'ntk')), y.size)
        opt = training.make_optimizer('gd', lr)
        f_lin = training.linearized_apply_fn(apply_fn)
        net = training.Trainer(apply_fn, training.mse_loss, opt, x, y)
        lin = training.Trainer(f_lin, training.mse_loss, opt, x, y,
                               consts=(params0,))
        f0 = apply_fn(params0, x)
        gaps = {}
        for steps in (2, 50):
            fn = apply_fn(net.advance(net.init(params0), steps).params, x)
            fl = f_lin(lin.advance(lin.init(params0), steps).params, x, params0)
            gaps[steps] = (float(jnp.linalg.norm(fn - fl)),
                           float(jnp.linalg.norm(fn - f0)))
        assert gaps[2][0] < 0.02 * gaps[2][1]
        assert gaps[50][0] > gaps[2][0]


def test_choose_loop():
    assert training.choose_loop('auto', True, 'cpu') == 'python'
    assert training.choose_loop('auto', False, 'cpu') == 'fori'
    assert training.choose_loop('auto', True, 'gpu') == 'fori'
    assert training.choose_loop('fori', True, 'cpu') == 'fori'
    with pytest.raises(ValueError, match='unknown loop'):
        training.choose_loop('scan', True)


@pytest.mark.parametrize('batch_size', [None, 4])
def test_cnn_trainer_python_loop_matches_fori_and_compiles_once(batch_size):
    """CNNs on the CPU step in a Python loop (XLA's convolutions inside a
    ``fori_loop`` body are ~80x slower there): same parameters as the
    ``fori_loop``, the same batches, and one compilation for all steps."""
    init_fn, apply_fn, _ = cnn(depth=2, width=4, readout='flatten', out_dim=3,
                               fast_kernel=False)
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(8, 6, 6, 3), jnp.float32)
    y = jnp.asarray(rng.randn(8, 3), jnp.float32)
    _, params0 = init_fn(jax.random.PRNGKey(0), x.shape)
    params0 = training.cast(params0, jnp.float32)
    opt = training.make_optimizer('sgd' if batch_size else 'gd', 0.05)
    key = jax.random.PRNGKey(5)
    kinds = {}
    finals = {}
    for loop in ('auto', 'fori', 'python'):
        trainer = training.Trainer(apply_fn, training.mse_loss, opt, x, y,
                                   batch_size, key, loop=loop)
        state = trainer.init(params0)
        for stop in (2, 5, 7):  # evaluation points: several advance() calls
            state = trainer.advance(state, stop)
        assert state.step == 7
        kinds[loop] = trainer.loop_kind(params0)
        finals[loop] = state.params
        if kinds[loop] == 'python':
            assert trainer._step._cache_size() == 1  # no recompilation per step
    assert kinds == {'auto': 'python', 'fori': 'fori', 'python': 'python'}
    moved = float(training.tree_distance(finals['fori'], params0))
    assert moved > 1e-2
    for loop in ('auto', 'python'):
        assert float(training.tree_distance(finals[loop], finals['fori'])) < \
            1e-4 * moved
    # A dense network keeps the fori_loop.
    fc_init, fc_apply, _ = fc(depth=2, width=8, out_dim=3)
    xf = x.reshape(8, -1)
    trainer = training.Trainer(fc_apply, training.mse_loss, opt, xf, y)
    assert trainer.loop_kind(fc_init(key, xf.shape)[1]) == 'fori'


# ----------------------------------------------------------------------------
# ntk_drift.py


def test_ntk_slice_equals_nt_empirical_ntk():
    with jax.enable_x64(True):
        init_fn, apply_fn, _ = fc(depth=2, width=32, out_dim=3)
        x = jnp.asarray(np.random.RandomState(0).randn(7, 2))
        _, params = init_fn(jax.random.PRNGKey(1), x.shape)
        full = ntk_drift.empirical_ntk_fn(apply_fn)(x, None, params)
        sliced = ntk_drift.ntk_slice(apply_fn, params, x[:1], x)
        np.testing.assert_allclose(sliced, full[0], rtol=1e-10)
        assert ntk_drift.relative_change(full, full) == 0.0
        assert ntk_drift.relative_change(2 * full, full) == pytest.approx(1.0)


def test_scale_and_shape_change_splits_the_drift():
    """``K_t = (1 + a) K_0 + E`` with ``E`` orthogonal to ``K_0`` gives back
    ``a`` and ``||E|| / ||K_0||``, whose squares add up to the drift's."""
    rng = np.random.RandomState(0)
    k0 = rng.randn(6, 6)
    k0 = k0 @ k0.T
    e = rng.randn(6, 6)
    e = e + e.T
    e -= np.vdot(e, k0) / np.vdot(k0, k0) * k0
    e *= 0.03 * np.linalg.norm(k0) / np.linalg.norm(e)
    for a in (-0.2, 0.0, 0.05):
        scale, shape = ntk_drift.scale_and_shape_change((1 + a) * k0 + e, k0)
        assert scale == pytest.approx(a, abs=1e-12)
        assert shape == pytest.approx(0.03, rel=1e-10)
        assert np.hypot(scale, shape) == pytest.approx(
            ntk_drift.relative_change((1 + a) * k0 + e, k0), rel=1e-12)
    assert ntk_drift.scale_and_shape_change(1.5 * k0, k0) == pytest.approx(
        (0.5, 0.0), abs=1e-12)


@pytest.mark.parametrize('model', [
    'fc', 'resnet', pytest.param('cnn', marks=pytest.mark.slow)])
def test_structured_ntk_implementation_matches_jacobian_contraction(model):
    """ntk_implementation=3 (structured derivatives, ~50x faster on a CPU at
    width 512) and 4 (ntkexp's) give the kernel of the Jacobian contraction
    (1), also against a second set of inputs."""
    from ntkexp.models import cnn, resnet
    build = {'fc': lambda: fc(depth=2, width=64, out_dim=3),
             'resnet': lambda: resnet(depth=2, width=64, out_dim=3),
             'cnn': lambda: cnn(depth=2, width=8, out_dim=3, readout='flatten')}
    init_fn, apply_fn, _ = build[model]()
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(5, 6, 6, 2) if model == 'cnn' else rng.randn(5, 7),
                    jnp.float32)
    _, params = init_fn(jax.random.PRNGKey(2), x.shape)
    k1 = np.asarray(ntk_drift.empirical_ntk_fn(apply_fn, 1)(x, None, params))
    assert k1.shape == (5, 5) and np.abs(k1).max() > 0.1
    for implementation in (3, ntk_drift.NTKEXP_STRUCTURED):
        k = np.asarray(ntk_drift.empirical_ntk_fn(apply_fn, implementation)(
            x, x[:4], params))
        np.testing.assert_allclose(k, k1[:, :4], rtol=1e-4,
                                   atol=1e-5 * np.abs(k1).max())
    with pytest.raises(ValueError, match='vmap_axes=0'):
        ntk_drift.empirical_ntk_fn(apply_fn, ntk_drift.NTKEXP_STRUCTURED,
                                   vmap_axes=None)


def test_loglog_slope():
    w = np.array([64, 128, 256, 512])
    slope, intercept = ntk_drift.loglog_slope(w, 3.0 * w ** -0.5)
    assert slope == pytest.approx(-0.5)
    assert math.exp(intercept) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        ntk_drift.loglog_slope([4, 4], [1, 2])


# ----------------------------------------------------------------------------
# The experiment, end to end.


def _final(frame: pd.DataFrame, metric: str, **where) -> pd.Series:
    rows = frame[frame['metric'] == metric]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    rows = rows[rows['step'] == rows['step'].max()]
    return rows.groupby('width')['value'].mean()


def test_end_to_end_fc_wide_net_approaches_ntk(tmp_path):
    cfg = compose(tmp_path, 'experiment=finite_width', 'model=fc',
                  'model.depth=2', 'dataset=gaussian', 'dataset.n_train=16',
                  'dataset.n_test=16', 'experiment.widths=[16,1024]',
                  'experiment.seeds=[0,1]', 'experiment.steps=40',
                  'experiment.eval_every=20', 'experiment.lr_fraction=0.2',
                  'experiment.references=[ntk,ntk_mean,linearized]',
                  'experiment.probe_size=4', 'experiment.centered=true')
    frame = runner.run_job(cfg, tmp_path / 'run')
    metrics = set(frame['metric'])
    for metric in ('train_loss', 'test_loss', 'dist_ntk', 'dist_ntk_mean',
                   'dist_linearized', 'ntk_drift', 'weight_change', 'lr',
                   'max_lr', 'n_params'):
        assert metric in metrics, metric
    net = frame[(frame['metric'] == 'test_loss') & (frame['predictor'] == 'net')]
    assert sorted(net['step'].unique()) == [0, 20, 40]
    assert sorted(net['width'].unique()) == [16, 1024]
    assert sorted(net['seed'].unique()) == [0, 1]
    # Rows of all seeds (the analytic kernel's time) name none; the nets
    # trained in float32 beside the float64 kernels.
    assert frame.loc[frame['metric'] == 'kernel_seconds', 'seed'].isna().all()
    assert set(frame['train_dtype']) == {'float32'} and set(frame['precision']) == {'float64'}
    np.testing.assert_allclose(net['t'], net['step'] * frame[
        frame['metric'] == 'lr']['value'].iloc[0])
    # lr = 0.2 * max_lr of the analytic NTK.
    lr = frame[frame['metric'] == 'lr']['value'].to_numpy()
    max_lr = frame[frame['metric'] == 'max_lr']['value'].to_numpy()
    np.testing.assert_allclose(lr, 0.2 * max_lr)
    # At step 0 the network *is* its own f_0: zero distance to the references.
    start = frame[(frame['metric'].isin(['dist_ntk', 'dist_linearized'])) &
                  (frame['step'] == 0)]
    assert start['value'].abs().max() < 1e-5
    # Wider = closer to the NTK dynamics and to the linear model, smaller drift.
    for metric in ('dist_ntk', 'dist_linearized'):
        dist = _final(frame, metric, split='test')
        assert dist[1024] < dist[16] / 3, (metric, dist)
    drift = _final(frame, 'ntk_drift')
    assert drift[1024] < drift[16] / 3
    # Training worked: the train loss went down for every predictor.
    train = frame[frame['metric'] == 'train_loss']
    for _, rows in train.groupby(['predictor', 'width', 'seed']):
        rows = rows.sort_values('step')
        assert rows['value'].iloc[-1] < 0.5 * rows['value'].iloc[0]
    summary = frame.attrs['summary']
    assert set(summary['predictor']) == {'net', 'ntk', 'ntk_mean', 'linearized',
                                         'net_centered'}
    # The centred net f(theta) - f(theta_0) starts at the zero function and,
    # wide, follows the NTK dynamics from f_0 = 0 (ntk_mean), not the net's.
    loss = frame[frame['metric'] == 'test_loss']
    y_test_loss = loss[(loss['predictor'] == 'ntk_mean') & (loss['step'] == 0)]
    cen0 = loss[(loss['predictor'] == 'net_centered') & (loss['step'] == 0)]
    np.testing.assert_allclose(cen0['value'].to_numpy(),
                               y_test_loss['value'].to_numpy(), rtol=1e-5)
    wide = loss[(loss['width'] == 1024) & (loss['step'] == 40)].groupby(
        'predictor')['value'].mean()
    assert abs(wide['net_centered'] - wide['ntk_mean']) < 0.1 * wide['ntk_mean']
    assert abs(wide['net_centered'] - wide['ntk_mean']) < abs(
        wide['net'] - wide['ntk_mean'])
    assert 'dist_net_centered' not in metrics
    assert 'diverged_at_step' not in metrics  # lr 0.2 of the bound: stable
    paths = fw_plots.plot(frame, tmp_path / 'figs')
    names = {p.name for p in paths}
    assert 'finite_width_ntk_drift.png' in names
    assert 'finite_width_distance.png' in names
    assert 'finite_width_curves.png' in names
    slopes = pd.read_csv(tmp_path / 'figs' / 'finite_width_ntk_drift_slopes.csv')
    assert slopes['slope'].iloc[0] < -0.2


def _centred_probe_cfg(tmp_path, steps: int, width: int, seed: int, *extra: str):
    """A two-layer FC net on 8 Gaussian points, trained ``steps`` full-batch
    GD steps at half its maximal learning rate with its centred twin, the
    NTK drift on 5 probe points, rows at step 0 and ``steps`` only."""
    return compose(tmp_path, 'experiment=finite_width', 'model=fc',
                   'model.depth=2', 'dataset=gaussian', 'dataset.n_train=8',
                   'dataset.n_test=4', f'experiment.widths=[{width}]',
                   f'experiment.seeds=[{seed}]', f'experiment.steps={steps}',
                   f'experiment.eval_every={steps}', 'experiment.lr_fraction=0.5',
                   'experiment.references=[]', 'experiment.probe_size=5',
                   'experiment.centered=true', *extra)


def _probe_net(cfg, width: int, seed: int):
    """The run's data and its net at ``width`` as the run initialised it
    for ``seed``: ``(x_train, y_train, apply_fn, params0)``, float32."""
    data = hydra.utils.instantiate(cfg.dataset)
    x = jnp.asarray(data.x_train, jnp.float32)
    y = jnp.asarray(data.y_train, jnp.float32)
    init_fn, apply_fn, _ = hydra.utils.instantiate(
        finite_width._model_cfg(cfg, width).model, out_dim=y.shape[1])  # pylint: disable=protected-access
    _, params0 = init_fn(jax.random.PRNGKey(seed), (-1,) + x.shape[1:])
    return x, y, apply_fn, params0


@pytest.mark.parametrize('center_scale', [1.0, 0.0])
def test_centred_net_drift_is_its_own_ntk_change(tmp_path, center_scale):
    """With ``experiment.centered`` the rows ``ntk_drift_centered``,
    ``ntk_scale_change_centered``, ``ntk_shape_change_centered`` and
    ``weight_change_centered`` are the centred network's: recomputed here by
    hand (gradient descent on ``0.5 mean((f(theta) - c f(theta_0) - y)^2)``
    from the same initialisation, neural-tangents' empirical NTK), they agree
    to float32 precision. At ``experiment.center_scale`` ``c = 1`` they are
    not the plain network's; at ``c = 0`` they are."""
    steps = 10
    cfg = _centred_probe_cfg(tmp_path, steps, 32, 3,
                             f'experiment.center_scale={center_scale}')
    frame = runner.run_job(cfg, tmp_path / 'run')

    def value(metric, step=steps, **where):
        rows = frame[(frame['metric'] == metric) & (frame['step'] == step)]
        for column, v in where.items():
            rows = rows[rows[column] == v]
        return rows['value'].item()

    x, y, apply_fn, params0 = _probe_net(cfg, 32, 3)
    lr = frame[frame['metric'] == 'lr']['value'].item()
    f0 = center_scale * apply_fn(params0, x)
    grad = jax.jit(jax.grad(
        lambda p: 0.5 * jnp.mean((apply_fn(p, x) - f0 - y) ** 2)))
    params = params0
    for _ in range(steps):
        params = jax.tree.map(lambda p, g: p - lr * g, params, grad(params))
    train_loss = 0.5 * float(jnp.mean((apply_fn(params, x) - f0 - y) ** 2))
    assert value('train_loss', predictor='net_centered') == pytest.approx(
        train_loss, rel=1e-4)
    ntk = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,))
    probe = x[:5]
    k0 = np.asarray(ntk(probe, None, params0), np.float64)
    kt = np.asarray(ntk(probe, None, params), np.float64)
    drift = float(np.linalg.norm(kt - k0) / np.linalg.norm(k0))
    assert value('ntk_drift_centered') == pytest.approx(drift, rel=1e-3)
    assert value('ntk_drift_centered', step=0) == 0.0
    scale = np.vdot(kt - k0, k0) / np.vdot(k0, k0)
    shape = np.linalg.norm(kt - k0 - scale * k0) / np.linalg.norm(k0)
    assert value('ntk_scale_change_centered') == pytest.approx(scale, abs=1e-3 * drift)
    assert value('ntk_shape_change_centered') == pytest.approx(shape, abs=1e-3 * drift)
    change = float(training.tree_distance(params, params0)
                   / training.tree_norm(params0))
    assert value('weight_change_centered') == pytest.approx(change, rel=1e-4)
    summary = frame.attrs['summary'].set_index('predictor')
    assert summary.loc['net_centered', 'ntk_drift'] == pytest.approx(drift, rel=1e-3)
    for metric in ('ntk_drift', 'ntk_scale_change', 'ntk_shape_change',
                   'weight_change'):
        if center_scale == 0.0:  # the plain network, trained alike
            assert value(metric + '_centered') == pytest.approx(
                value(metric), rel=1e-5, abs=1e-7)
    # At c = 1 not a copy of the plain network's (which must also undo f_0).
    if center_scale == 1.0:
        assert abs(value('ntk_drift') - drift) > 0.02 * drift


def test_initial_output_energy_is_f0_over_y_from_the_step0_losses(tmp_path):
    """Runs at three centrings ``c``, collected as ``ntkexp collect`` does:
    the centred nets' step-0 training losses ``|y - (1 - c) f_0|^2 / 2m``
    give ``f0_over_y`` = ``|f_0|^2 / |y|^2`` of the net's own initial
    function (recomputed here from the seed), to float32 precision."""
    for c in (0.0, 1.0, 2.0):
        cfg = _centred_probe_cfg(tmp_path, 1, 32, 3,
                                 f'experiment.center_scale={c}')
        runner.run_job(cfg, tmp_path / 'runs' / str(c))
    frame = collect.collect([tmp_path / 'runs'])
    # collect reads the swept keys from Hydra's overrides, which run_job
    # alone does not write: the run folders are named by c.
    frame['center_scale'] = frame['run_dir'].map(lambda d: float(Path(d).name))
    energy = drift_tables.initial_output_energy(frame, ['model', 'width'])
    assert list(energy.columns) == ['model', 'width', 'seed', 'f0_over_y']
    x, y, apply_fn, params0 = _probe_net(cfg, 32, 3)
    f0 = np.asarray(apply_fn(params0, x), np.float64)
    y = np.asarray(y, np.float64)
    assert energy['seed'].tolist() == [3]
    assert energy['f0_over_y'].item() == pytest.approx(
        np.sum(f0 ** 2) / np.sum(y ** 2), rel=1e-4)
    # Two centrings fit no quadratic; cross-entropy losses are no quadratic.
    assert drift_tables.initial_output_energy(
        frame[frame['center_scale'] != 2.0], ['model', 'width']).empty
    assert drift_tables.initial_output_energy(
        frame.assign(loss='xent'), ['model', 'width']).empty


def test_layer_rows_split_the_probe_ntk_by_parameter_leaf(tmp_path):
    """``experiment.ntk_layers``: each leaf's part of the probe NTK, computed
    here by hand (the Jacobian of the outputs with respect to that leaf
    alone), gives ``ntk_layer_share`` at init; the shares add up to 1 and
    the leaves' scale changes to ``ntk_scale_change`` (net and centred)."""
    steps = 6
    cfg = _centred_probe_cfg(tmp_path, steps, 16, 1, 'experiment.ntk_layers=true')
    frame = runner.run_job(cfg, tmp_path / 'run')
    x, y, apply_fn, params0 = _probe_net(cfg, 16, 1)
    x = x[:5]
    leaves, treedef = jax.tree_util.tree_flatten(params0)
    k0 = np.asarray(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,))(
        x, None, params0), np.float64)
    share = frame[frame['metric'] == 'ntk_layer_share'].set_index('layer')
    assert list(share.index) == list(range(len(leaves))) == [0, 1, 2, 3, 4, 5]
    k = y.shape[1]
    assert share.loc[4, 'layer_shape'] == f'16x{k}'  # the readout's weights
    for i, leaf in enumerate(leaves):
        def f(l, i=i):
            others = list(leaves)
            others[i] = l
            return apply_fn(jax.tree_util.tree_unflatten(treedef, others), x)
        j = np.asarray(jax.jacrev(f)(leaf), np.float64).reshape(5, k, -1)
        k_leaf = np.einsum('aop,bop->ab', j, j) / k
        assert share.loc[i, 'value'] == pytest.approx(
            np.vdot(k_leaf, k0) / np.vdot(k0, k0), rel=1e-4, abs=1e-7)
    assert share['value'].sum() == pytest.approx(1.0, rel=1e-5)
    last = frame[frame['step'] == steps]
    for suffix in ('', '_centered'):
        parts = last[last['metric'] == f'ntk_layer_scale_change{suffix}']
        whole = last[last['metric'] == f'ntk_scale_change{suffix}']['value'].item()
        assert len(parts) == len(leaves) and abs(whole) > 1e-4
        assert parts['value'].sum() == pytest.approx(whole, rel=1e-3)
    # The figure's table: the same values (one seed), the leaves in order.
    paths = fw_plots.plot(frame, tmp_path / 'figs')
    table = pd.read_csv(tmp_path / 'figs' / 'finite_width_ntk_layers.csv')
    assert tmp_path / 'figs' / 'finite_width_ntk_layers.png' in paths
    shares = table[table['metric'] == 'ntk_layer_share'].set_index('layer')
    np.testing.assert_allclose(shares['mean'], share['value'], rtol=1e-12)
    assert set(table['metric']) == {'ntk_layer_share', 'ntk_layer_scale_change',
                                    'ntk_layer_scale_change_centered'}
    # By part of the net (this FC net: W, b per layer): the shares add up to
    # 1, the parts of the scale change to the whole kernel's.
    groups = pd.read_csv(tmp_path / 'figs' / 'finite_width_ntk_layer_groups.csv')
    shares = groups[groups['metric'] == 'ntk_layer_share'].set_index('group')
    assert list(shares.index) == ['input', 'hidden', 'readout']
    np.testing.assert_allclose(shares['mean'], [share.loc[[0, 1], 'value'].sum(),
                                                share.loc[[2, 3], 'value'].sum(),
                                                share.loc[[4, 5], 'value'].sum()])
    for suffix in ('', '_centered'):
        parts = groups[groups['metric'] == f'ntk_layer_scale_change{suffix}']
        whole = last[last['metric'] == f'ntk_scale_change{suffix}']['value'].item()
        assert parts['mean'].sum() == pytest.approx(whole, rel=1e-3)


def test_diverging_predictor_is_flagged_with_the_fix(tmp_path, caplog):
    """lr at 3x the stability bound of the analytic NTK: the net and its
    linearisation diverge (the NTK reference, nt.predict's gradient flow,
    cannot). That is flagged by one warning per
    predictor naming experiment.lr_kernel=empirical_outputs and a diverged_at_step
    row, instead of silent 1e40 losses."""
    cfg = compose(tmp_path, 'experiment=finite_width', 'model=fc',
                  'model.depth=1', 'dataset=gaussian', 'dataset.n_train=8',
                  'dataset.n_test=4', 'experiment.widths=[32]',
                  'experiment.steps=60', 'experiment.eval_every=20',
                  'experiment.lr_fraction=3.0', 'experiment.probe_size=0')
    with caplog.at_level('WARNING', logger='ntkexp.experiments.finite_width'):
        frame = runner.run_job(cfg, tmp_path / 'run')
    flagged = frame[frame['metric'] == 'diverged_at_step']
    assert set(flagged['predictor']) == {'linearized', 'net'}
    assert (flagged['value'] > 0).all() and len(flagged) == len(
        set(flagged['predictor']))  # once per predictor
    loss = frame[(frame['metric'] == 'train_loss') & (frame['step'] == 60)]
    assert not loss[loss['predictor'] == 'linearized']['value'].iloc[0] < 1e3  # or NaN
    warnings = [r.getMessage() for r in caplog.records
                if 'diverges' in r.getMessage()]
    assert len(warnings) == len(flagged)
    assert all('use experiment.lr_kernel=empirical_outputs' in w for w in warnings)


def test_linear_predictors_under_full_batch_gd_are_flagged_at_a_tenfold_rise(caplog):
    """At a stable rate gradient descent never raises a linear model's convex
    loss: the linearised net and the kernel dynamics are flagged once their
    train loss is 10x its start (a 20-step run whose linearisation went
    0.24 -> 87 was not flagged at the networks' 1e3); the network itself,
    whose loss may rise and fall (the catapult), and any predictor under SGD
    or momentum keep the 1e3."""
    class Rows:
        def __init__(self):
            self.added = []

        def add(self, metric, value, **params):
            self.added.append((metric, value, params['predictor']))

    watch = fw_rows.DivergenceWatch(1.0, 'empirical', full_batch_gd=True, width=16)
    rows = Rows()
    with caplog.at_level('WARNING', logger='ntkexp.experiments.finite_width'):
        for step, loss in ((0, 0.25), (10, 2.0), (20, 3.0), (30, 200.0)):
            for name in ('net', 'linearized', 'ntk'):
                watch(rows, name, step, loss)
    assert rows.added == [('diverged_at_step', 20, 'linearized'),
                          ('diverged_at_step', 20, 'ntk')]
    assert all('lr_fraction' in r.getMessage() for r in caplog.records)
    sgd = fw_rows.DivergenceWatch(1.0, 'empirical', full_batch_gd=False)
    rows = Rows()
    for step, loss in ((0, 0.25), (20, 3.0), (30, 300.0)):
        sgd(rows, 'linearized', step, loss)
    assert rows.added == [('diverged_at_step', 30, 'linearized')]
    # The first fix named for the analytic rate is the NTK over the outputs.
    analytic = fw_rows.DivergenceWatch(1.0, 'analytic')
    with caplog.at_level('WARNING', logger='ntkexp.experiments.finite_width'):
        analytic(Rows(), 'net', 0, 1.0)
        analytic(Rows(), 'net', 5, float('nan'))
    assert 'use experiment.lr_kernel=empirical_outputs' in caplog.records[-1].getMessage()


@pytest.mark.slow
def test_end_to_end_resnet_sgd_xent(tmp_path):
    cfg = compose(tmp_path, 'experiment=finite_width', 'model=resnet',
                  'model.depth=2', 'dataset.n_train=32', 'dataset.n_test=32',
                  'experiment.widths=[16,256]', 'experiment.steps=20',
                  'experiment.eval_every=10', 'experiment.optimizer=momentum',
                  'experiment.batch_size=16', 'experiment.loss=xent',
                  'experiment.lr_fraction=0.02', 'experiment.probe_size=4',
                  'experiment.lr_kernel=empirical',
                  'experiment.references=[ntk,linearized]')
    frame = runner.run_job(cfg, tmp_path / 'run')
    acc = frame[(frame['metric'] == 'test_accuracy')]
    assert set(acc['predictor']) == {'net', 'ntk', 'linearized'}
    assert acc['value'].between(0, 1).all()
    assert (frame['model'] == 'resnet').all()
    # lr from each initial network's own (empirical) NTK: width-dependent,
    # close to the infinite-width bound for the wide net.
    max_lr = frame[frame['metric'] == 'max_lr'].set_index('width')
    assert (max_lr['kernel'] == 'empirical').all()
    assert max_lr.loc[16, 'value'] != max_lr.loc[256, 'value']
    np.testing.assert_allclose(
        frame[frame['metric'] == 'lr']['value'].to_numpy(),
        0.02 * max_lr['value'].to_numpy())
    drift = _final(frame, 'ntk_drift')
    assert drift[256] < drift[16]
    drift = frame[frame['metric'] == 'ntk_drift']
    assert (drift[drift['step'] == 0]['value'] == 0).all()
    assert drift[drift['step'] > 0]['value'].gt(0).all()
    # Momentum + cross-entropy at 2% of the MSE bound trains without blowing up.
    loss = frame[(frame['metric'] == 'train_loss') & (frame['predictor'] == 'net')]
    for _, rows in loss.groupby('width'):
        rows = rows.sort_values('step')
        assert rows['value'].iloc[-1] < rows['value'].iloc[0]


@pytest.mark.slow
def test_jacot_configs_compose_and_run_tiny(tmp_path):
    cfg = compose(tmp_path, 'experiment=jacot2018_fig1')
    assert cfg.experiment.name == 'jacot2018_fig1'
    assert list(cfg.experiment.widths) == [500, 10000]
    assert len(cfg.experiment.seeds) == 10 and cfg.experiment.steps == 200
    assert cfg.model.depth == 3 and cfg.model.b_std == 0.1
    assert cfg.experiment.lr == 1.0 and cfg.experiment.lr_fraction is None
    assert cfg.dataset.d == 2 and cfg.dataset.target == 'x1*x2'
    # Options inherited from finite_width.yaml.
    assert cfg.experiment.run == 'ntkexp.experiments.finite_width.run'
    assert cfg.experiment.optimizer == 'gd'

    cfg = compose(tmp_path, 'experiment=jacot2018_fig1',
                  'experiment.widths=[16,512]', 'experiment.seeds=[0]',
                  'experiment.steps=20', 'experiment.slice_steps=[0,20]',
                  'experiment.slice.points=9', 'dataset.n_train=8',
                  'dataset.n_test=8', 'experiment.lr=0.5')
    frame = runner.run_job(cfg, tmp_path / 'fig1')
    sl = frame[frame['metric'] == 'ntk_slice']
    assert len(sl[sl['predictor'] == 'infinite']) == 2 * 9
    net = sl[sl['predictor'] == 'net']
    assert sorted(net['step'].unique()) == [0, 20]
    inf = sl[(sl['predictor'] == 'infinite') & (sl['width'] == 512)]
    init = net[(net['width'] == 512) & (net['step'] == 0)]
    # The slice at x = x0 (gamma = 0) is the kernel's diagonal, close for n=512.
    np.testing.assert_allclose(init['value'].to_numpy(), inf['value'].to_numpy(),
                               rtol=0.3, atol=0.1)
    moved = {}
    for width in (16, 512):
        a = net[(net['width'] == width) & (net['step'] == 0)]['value'].to_numpy()
        b = net[(net['width'] == width) & (net['step'] == 20)]['value'].to_numpy()
        moved[width] = np.linalg.norm(b - a) / np.linalg.norm(a)
    assert moved[512] < moved[16]
    assert fw_plots.plot_ntk_slice(frame, tmp_path / 'figs', 'fig1')

    cfg = compose(tmp_path, 'experiment=jacot2018_fig2',
                  'experiment.widths=[32]', 'experiment.seeds=[0,1]',
                  'experiment.steps=50', 'dataset.n_test=12')
    assert cfg.dataset.n_train == 4 and cfg.dataset.grid
    frame = runner.run_job(cfg, tmp_path / 'fig2')
    perc = frame[frame['metric'] == 'ensemble_percentile']
    assert sorted(perc['percentile'].unique()) == [10, 50, 90]
    p = perc.pivot_table(index='index', columns='percentile', values='value')
    assert (p[10] <= p[50]).all() and (p[50] <= p[90]).all()
    mean = frame[frame['metric'] == 'ensemble_mean'].set_index('index')['value']
    np.testing.assert_allclose(p[50], mean.loc[p.index], atol=1e-9)
    assert len(frame[frame['metric'] == 'function']) == 2 * 12
    assert len(frame[frame['metric'] == 'train_target']) == 4
    assert fw_plots.plot_functions(frame, tmp_path / 'figs', 'fig2')


def test_jacot2018_fig2_gaussian_at_t_1000_is_the_t_infinity_one(tmp_path):
    """Jacot et al. 2018, Fig. 2 compares the nets at T = 1000 with the
    Gaussian at t -> infinity; ntkexp draws the Gaussian at the nets' own t.
    In the paper's setting (4 points, lr 1, 1000 steps) the two are the same."""
    from hydra.utils import instantiate  # pylint: disable=g-import-not-at-top
    cfg = compose(tmp_path, 'experiment=jacot2018_fig2')
    data = instantiate(cfg.dataset)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=1)
    with jax.enable_x64(True):
        predict = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, np.asarray(data.x_train, np.float64),
            np.asarray(data.y_train, np.float64),
            learning_rate=float(cfg.experiment.lr))
        x_test = np.asarray(data.x_test, np.float64)
        at_t = predict(t=float(cfg.experiment.steps), x_test=x_test, get='ntk',
                       compute_cov=True)
        at_inf = predict(t=None, x_test=x_test, get='ntk', compute_cov=True)
    np.testing.assert_allclose(at_t.mean, at_inf.mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.diag(at_t.covariance),
                               np.diag(at_inf.covariance), rtol=1e-10)
    assert np.abs(at_inf.mean).max() > 0.1  # not trivially zero


def test_standard_parameterization_uses_the_width_aware_ntk(tmp_path):
    """Standard param.: the NTK (and so max_lr) depends on the width.

    Lee et al. 2020 train standard-parameterised nets at a fraction of the
    maximal learning rate of their own, width-dependent NTK; the reference
    dynamics must use that kernel too.
    """
    cfg = compose(tmp_path, 'experiment=finite_width', 'model=fc',
                  'model.depth=1', 'model.parameterization=standard',
                  'dataset=gaussian', 'dataset.n_train=16', 'dataset.n_test=16',
                  'experiment.widths=[32,1024]', 'experiment.seeds=[0]',
                  'experiment.steps=20', 'experiment.eval_every=10',
                  'experiment.lr_fraction=0.5', 'experiment.references=[ntk]',
                  'experiment.probe_size=0')
    frame = runner.run_job(cfg, tmp_path / 'run')
    max_lr = frame[frame['metric'] == 'max_lr'].set_index('width')['value']
    # The readout's NTK term grows like the width: max_lr shrinks like 1/n.
    assert 10 < max_lr[32] / max_lr[1024] < 40
    # ... and equals the bound of the initial wide network's empirical NTK.
    data = hydra.utils.instantiate(cfg.dataset)
    cfg.model.width = 1024
    init_fn, apply_fn, _ = hydra.utils.instantiate(cfg.model, out_dim=1)
    x = jnp.asarray(data.x_train, jnp.float32)
    _, params = init_fn(jax.random.PRNGKey(0), x.shape)
    emp = np.asarray(ntk_drift.empirical_ntk_fn(apply_fn)(x, None, params))
    emp_lr = training.max_learning_rate(emp, data.y_train.size)
    assert emp_lr == pytest.approx(max_lr[1024], rel=0.15)
    # The wide net follows its (width-aware) NTK dynamics more closely.
    dist = _final(frame, 'dist_ntk', split='test')
    assert dist[1024] < dist[32] / 2, dist
    loss = frame[(frame['metric'] == 'train_loss') & (frame['predictor'] == 'net')]
    for _, rows in loss.groupby('width'):
        rows = rows.sort_values('step')
        assert rows['value'].iloc[-1] < 0.7 * rows['value'].iloc[0]


def test_paper_configs_compose(tmp_path):
    cfg = compose(tmp_path, 'experiment=ntk_drift', 'model=resnet')
    assert cfg.experiment.name == 'ntk_drift' and cfg.model.alpha is not None
    assert cfg.experiment.widths[-1] >= 1024 and cfg.experiment.probe_size > 0
    cfg = compose(tmp_path, 'experiment=lee2020_finite', 'model=cnn')
    assert cfg.experiment.kernel_inf and cfg.dataset.name == 'cifar10'
    runner.validate(cfg)
    # experiment.model_widths: each architecture of one sweep at its own widths.
    widths = {model: finite_width.widths_of(compose(
        tmp_path, 'experiment=lee2020_finite', f'model={model}'))
        for model in ('fc', 'cnn_vec', 'resnet')}
    assert widths == {'fc': [512], 'cnn_vec': [16], 'resnet': [512]}
    for center in ('zero', 'init'):  # the L2 study's grid is valid
        cfg = compose(tmp_path, 'experiment=lee2020_l2',
                      'model.parameterization=standard', 'experiment.l2=0.1',
                      f'experiment.l2_center={center}')
        runner.validate(cfg)
        assert cfg.experiment.references == [] and not cfg.experiment.centered
    cfg = compose(tmp_path, 'experiment=lee2020_lr', 'experiment.lr_fraction=4.0')
    runner.validate(cfg)
    assert finite_width.eval_steps_of(cfg.experiment)[:5] == [0, 1, 2, 3, 4]
    assert cfg.experiment.lr_kernel == 'empirical' and cfg.experiment.probe_size
    cfg = compose(tmp_path, 'experiment=lee2020_width')
    runner.validate(cfg)
    assert finite_width.widths_of(cfg) == [32, 64, 128, 256, 512, 1024, 2048]
    cfg = compose(tmp_path, 'experiment=lee2020_ensemble')
    runner.validate(cfg)
    assert cfg.experiment.ensemble and cfg.experiment.lr_kernel == 'analytic'
    assert finite_width.seeds_of(cfg) == list(range(16))
    assert finite_width.widths_of(cfg) == [128, 1024]
    cfg = compose(tmp_path, 'experiment=lee2020_finite', 'model=cnn_vec',
                  'experiment.model_widths={cnn: [0]}')
    with pytest.raises(runner.ConfigError, match='experiment.widths'):
        runner.validate(cfg)


@pytest.mark.parametrize('override, message', [
    ('experiment.optimizer=adam', 'experiment.optimizer'),
    ('experiment.widths=[0,8]', 'experiment.widths'),
    ('experiment.loss=hinge', 'experiment.loss'),
    ('experiment.batch_size=8', 'full-batch'),
    ('experiment.references=[ntk,gp]', 'experiment.references'),
    ('experiment.lr_fraction=-1', 'experiment.lr_fraction'),
    ('experiment.ensemble=true', r'experiment.seeds=\[0,1,2,3\]'),
    ('experiment.ensemble=yes', 'experiment.ensemble'),
    ('experiment.center_scale=0.5', 'add experiment.centered=true'),
    ('experiment.ntk_layers=true experiment.probe_size=0',
     'experiment.ntk_layers splits the NTK'),
    ('experiment.centered=true experiment.center_scale=half',
     'experiment.center_scale=.half. must be a number'),
    ('experiment.l2=-0.1', 'experiment.l2'),
    ('experiment.l2_center=origin', 'experiment.l2_center'),
    ('experiment.l2=0.1 experiment.l2_center=init experiment.loss=xent',
     'closed form for the MSE loss'),
    ('experiment.ntk_implementation=7', r'experiment.ntk_implementation=7 is '
     r'invalid; use jacobian_contraction, ntk_vector_products, '
     r'structured_derivatives, ntkexp_structured, ntkexp_structured_tf32x3 '
     r'\(or 1-5\)'),
])
def test_validate_rejects_bad_values(tmp_path, override, message):
    cfg = compose(tmp_path, 'experiment=finite_width', *override.split())
    with pytest.raises(runner.ConfigError, match=message):
        runner.validate(cfg)


def test_ntk_implementation_by_name_or_number(tmp_path):
    """``experiment.ntk_implementation`` takes the names the alignment
    experiment takes (without its ``auto``) or their numbers."""
    for value, code in (('structured_derivatives', 3), ('NTKEXP_STRUCTURED', 4),
                        ('1', 1)):
        cfg = compose(tmp_path, 'experiment=finite_width',
                      f'experiment.ntk_implementation={value}')
        runner.validate(cfg)
        assert ntk_drift.implementation_code(
            cfg.experiment.ntk_implementation) == code
    cfg = compose(tmp_path, 'experiment=finite_width',
                  'experiment.ntk_implementation=auto')
    with pytest.raises(runner.ConfigError, match='auto'):
        runner.validate(cfg)
    # The TF32 x3 convolutions need a GPU: one line naming the fix here; on
    # a GPU (as built for one) its code, and the kernel equals 4's within
    # float32 accuracy with TF32 rounding emulated (tests/test_tf32x3_conv.py).
    cfg = compose(tmp_path, 'experiment=finite_width',
                  'experiment.ntk_implementation=ntkexp_structured_tf32x3')
    with pytest.raises(runner.ConfigError,
                       match="needs a GPU.*use ntkexp_structured$"):
        runner.validate(cfg)
    from ntkexp import backend, models, tf32x3_conv
    init_fn, apply_fn, _ = models.cnn(depth=2, width=8, out_dim=3, readout='gap')
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 6, 2))
    _, params = init_fn(jax.random.PRNGKey(1), x.shape)
    exact = ntk_drift.empirical_ntk_fn(apply_fn, 4)(x, None, params)
    with backend.targeting('gpu'):
        assert ntk_drift.implementation_code('ntkexp_structured_tf32x3') == 5
        emulated = tf32x3_conv.tensor_core_operand
        tf32x3_conv.tensor_core_operand = tf32x3_conv.round_to_tf32
        try:
            split = ntk_drift.empirical_ntk_fn(apply_fn, 5)(x, None, params)
        finally:
            tf32x3_conv.tensor_core_operand = emulated
    assert 0 < np.abs(np.asarray(split) - np.asarray(exact)).max() < (
        2e-6 * np.abs(np.asarray(exact)).max())


def test_eval_steps():
    from omegaconf import OmegaConf
    exp = OmegaConf.create({'steps': 100, 'eval_every': 30})
    assert finite_width.eval_steps_of(exp) == [0, 30, 60, 90, 100]
    exp = OmegaConf.create({'steps': 10, 'eval_steps': [5, 1]})
    assert finite_width.eval_steps_of(exp) == [0, 1, 5, 10]


def test_finite_vs_kernel_bars_hold_every_predictor(tmp_path):
    """Lee et al. 2020 Fig. 1's bars: per parameterisation the net, the
    centred net and both NTK dynamics (best test accuracy over the steps,
    mean over seeds), then the NNGP / NTK regression; the CSV says the same."""
    rows = []
    best = {'net': 0.15, 'net_centered': 0.25, 'ntk': 0.17, 'ntk_mean': 0.28}
    for par in ('ntk', 'standard'):
        for predictor, top in best.items():
            for seed, shift in ((0, 0.0), (1, 0.02)):
                for step, value in ((0, 0.1), (50, top + shift), (100, top - 0.05)):
                    rows.append(dict(metric='test_accuracy', model='fc',
                                     dataset='cifar10', parameterization=par,
                                     width=512, predictor=predictor, seed=seed,
                                     step=step, value=value))
        for kernel, value in (('nngp', 0.26), ('ntk', 0.27)):
            rows.append(dict(metric='kernel_test_accuracy', model='fc',
                             dataset='cifar10', parameterization=par,
                             kernel=kernel, seed=0, value=value))
    paths = fw_plots.plot_finite_vs_kernel(pd.DataFrame(rows), tmp_path, 'lee')
    table = pd.read_csv(tmp_path / 'lee_finite_vs_kernel.csv')
    assert any(p.name == 'lee_finite_vs_kernel.png' for p in paths)
    bars = table.dropna(subset=['best_accuracy'])
    assert len(bars) == 8  # 4 predictors x 2 parameterisations
    for predictor, name in (('ntk_mean', 'NTK dynamics, f_0 = 0'),
                            ('net_centered', 'net, centred f_t - f_0')):
        got = bars[bars['predictor'] == f'{name} (standard param.)']
        np.testing.assert_allclose(got['best_accuracy'], best[predictor] + 0.01)
        np.testing.assert_allclose(got['final_accuracy'], best[predictor] - 0.05)
    kernels = table[table['best_accuracy'].isna()]
    assert kernels['predictor'].tolist() == ['NNGP', 'NTK']
    np.testing.assert_allclose(kernels['final_accuracy'], [0.26, 0.27])


def test_finite_vs_kernel_bars_keep_l2_settings_apart(tmp_path):
    """Runs with and without experiment.l2 drawn together get one bar each
    (not their average), named by the setting."""
    rows = []
    for l2, center, top in ((None, None, 0.2), (0.01, None, 0.3),
                            (0.01, 'init', 0.25)):
        for step, value in ((0, 0.1), (50, top)):
            rows.append(dict(metric='test_accuracy', model='fc',
                             dataset='cifar10', parameterization='ntk',
                             width=512, predictor='net', seed=0, step=step,
                             value=value, l2=l2, l2_center=center))
    rows.append(dict(metric='kernel_test_accuracy', model='fc', dataset='cifar10',
                     parameterization='ntk', kernel='ntk', seed=0, value=0.27))
    fw_plots.plot_finite_vs_kernel(pd.DataFrame(rows), tmp_path, 'lee')
    table = pd.read_csv(tmp_path / 'lee_finite_vs_kernel.csv').dropna(
        subset=['best_accuracy']).set_index('predictor')['best_accuracy']
    assert table.to_dict() == {'net, no L2 (ntk param.)': 0.2,
                               'net, L2 0.01 (ntk param.)': 0.3,
                               'net, L2 0.01 to init (ntk param.)': 0.25}


def test_empirical_lr_kernel_is_blocked_within_the_memory_budget(tmp_path):
    """lr_kernel=empirical takes the whole training set's empirical NTK; under a
    kernel.memory_gb its one block does not fit, it runs in blocks that do and
    gives the same largest stable learning rate."""
    def max_lr(memory_gb):
        cfg = compose(tmp_path, 'experiment=finite_width', 'model=fc',
                      'dataset.n_train=48', 'dataset.n_test=16',
                      'experiment.widths=[64]', 'experiment.steps=1',
                      'experiment.eval_every=1', 'experiment.probe_size=0',
                      'experiment.references=[]', 'experiment.lr_kernel=empirical',
                      'experiment.ntk_implementation=jacobian_contraction',
                      f'kernel.memory_gb={memory_gb}', 'skip_done=false')
        frame = runner.run_job(cfg, tmp_path / f'run_{memory_gb}')
        return frame[frame['metric'] == 'max_lr']['value'].item()

    from ntkexp.empirical_ntk import EmpiricalNTK
    sizes = []
    real = EmpiricalNTK._choose  # pylint: disable=protected-access

    def spy(self, *args):
        sizes.append(real(self, *args))
        return sizes[-1]

    import unittest.mock
    with unittest.mock.patch.object(EmpiricalNTK, '_choose', spy):
        ample, tight = max_lr(4), max_lr(0.003)
    (block, choice, _), (small, tight_choice, used) = sizes
    assert block == 48 and choice is None
    assert small < 48 and used <= tight_choice.usable_bytes
    assert tight_choice.budget_bytes == pytest.approx(0.003 * 1024 ** 3)
    assert tight == pytest.approx(ample, rel=1e-5)


def test_distances_and_drift_of_diverged_predictors_are_not_fitted(tmp_path, saved_figures):
    """A predictor that diverged (its diverged_at_step row) leaves its
    distance, and a diverged network its NTK drift, out of the figures and
    their fitted slopes: they measure the blow-up. The figure says what was
    left out."""
    rows = []
    for seed in (0, 1):
        run = f'runs/{seed}'
        for width in (32, 128, 512):
            dist = 0.4 * (width / 32) ** -0.5
            for metric, value in (('dist_ntk', dist), ('dist_linearized', dist),
                                  ('ntk_drift', dist)):
                blown = width == 32 and seed == 0 and metric != 'dist_ntk'
                rows.append(dict(run_dir=run, metric=metric, model='fc',
                                 width=width, seed=seed, step=40, split='test',
                                 value=1e16 if blown else value))
        if seed == 0:
            for predictor in ('linearized', 'net'):
                rows.append(dict(run_dir=run, metric='diverged_at_step',
                                 model='fc', width=32, seed=0, step=None,
                                 predictor=predictor, value=20.0))
    frame = pd.DataFrame(rows)
    notes = {}

    def keep_note(fig, name):
        notes[name] = [t.get_text() for ax in fig.axes for t in ax.texts]

    fw_plots.plot(frame.assign(experiment='fw'), tmp_path)
    for name, fig in saved_figures.items():
        keep_note(fig, name)
    slopes = pd.read_csv(tmp_path / 'fw_distance_slopes.csv').set_index('metric')
    # The network diverged too (seed 0, width 32): both distances lose it.
    assert slopes['points'].to_dict() == {'dist_ntk': 5, 'dist_linearized': 5}
    np.testing.assert_allclose(slopes['slope'], -0.5, atol=1e-9)
    drift = pd.read_csv(tmp_path / 'fw_ntk_drift_slopes.csv')
    assert drift['points'].item() == 5
    np.testing.assert_allclose(drift['slope'], -0.5, atol=1e-9)
    assert notes['fw_distance'] == [
        'not drawn, diverged (lr above 2/$\\lambda_{max}$ of its kernel): '
        'linearised network at width 32 (seed 0); network at width 32 (seed 0)']
    assert notes['fw_ntk_drift'] == [
        'not drawn, diverged (lr above 2/$\\lambda_{max}$ of its kernel): '
        'network at width 32 (seed 0)']


def test_drift_against_center_scale_has_the_signed_scale_change(tmp_path, saved_figures):
    """Runs at 3 or more centrings ``experiment.center_scale`` get the figure
    of the NTK change against it: log-y panels of the changes, then linear-y
    panels of the signed scale change ``a`` (negative values kept); the CSV
    holds every part's mean per width and centring."""
    rows = []
    for c in (-1.0, 0.0, 1.0, 2.0):
        for width in (64, 256):
            for seed in (0, 1):
                a = (0.03 * (1 - c) ** 2 - 0.06 * (1 - c) + 0.02) * 64 / width
                shape = 0.01 * (1 + seed) * 64 / width
                for metric, value in (('ntk_drift_centered', np.hypot(a, shape)),
                                      ('ntk_scale_change_centered', a),
                                      ('ntk_shape_change_centered', shape),
                                      ('ntk_drift', 0.02), ('ntk_scale_change', -0.01),
                                      ('ntk_shape_change', np.sqrt(0.0003))):
                    rows.append(dict(run_dir=f'runs/{c}', metric=metric,
                                     model='fc', center_scale=c, width=width,
                                     seed=seed, step=100, value=value))
                # Step-0 loss |y - (1 - c) f_0|^2 / 2m with |y|^2 / 2m = 0.05,
                # -2 <y, f_0> / 2m = 0.01 (1 + seed), |f_0|^2 / 2m = 0.15 (1 + seed):
                # f0_over_y = 3 and 6.
                loss = 0.05 + 0.01 * (1 + seed) * (1 - c) + 0.15 * (1 + seed) * (1 - c) ** 2
                rows.append(dict(run_dir=f'runs/{c}', metric='train_loss',
                                 predictor='net_centered', model='fc',
                                 center_scale=c, width=width, seed=seed, step=0,
                                 value=loss))
    frame = pd.DataFrame(rows).assign(experiment='centring')
    drawn = {}

    def keep_axes(fig, name):
        drawn[name] = [(ax.get_yscale(), ax.get_title()) for ax in fig.axes]

    paths = fw_plots.plot(frame, tmp_path)
    for name, fig in saved_figures.items():
        keep_axes(fig, name)
    assert tmp_path / 'centring_ntk_drift_center_scale.png' in paths
    assert not (tmp_path / 'centring_ntk_drift_alpha.csv').exists()
    assert [scale for scale, _ in drawn['centring_ntk_drift_center_scale']] == [
        'log', 'log', 'symlog', 'symlog']
    table = pd.read_csv(tmp_path / 'centring_ntk_drift_center_scale.csv')
    assert len(table) == 6 * 4 * 2 and (table['seeds'] == 2).all()
    one = table[(table['width'] == 64)].set_index(['metric', 'center_scale'])
    # a(c) = 0.03 (1 - c)^2 - 0.06 (1 - c) + 0.02: -0.01 at c = 0, 0.02 at 1.
    assert one.loc[('ntk_scale_change_centered', 0.0), 'mean'] == pytest.approx(-0.01)
    assert one.loc[('ntk_scale_change_centered', 1.0), 'mean'] == pytest.approx(0.02)
    assert one.loc[('ntk_shape_change_centered', 2.0), 'mean'] == pytest.approx(0.015)
    assert fw_plots.drift_against(frame, 'alpha').empty
    # The quadratic in 1 - c is recovered per seed, exactly here.
    terms = pd.read_csv(tmp_path / 'centring_ntk_scale_centering_terms.csv')
    terms = terms.set_index('width')
    np.testing.assert_allclose(terms.loc[[64, 256], 'from_y'], [0.02, 0.005])
    np.testing.assert_allclose(terms.loc[[64, 256], 'from_f0'], [-0.06, -0.015])
    np.testing.assert_allclose(terms.loc[[64, 256], 'from_f0_squared'],
                               [0.03, 0.0075])
    assert (terms['residual'] < 1e-12).all() and (terms['seeds'] == 2).all()
    # The plain net loses (0.06 - 0.03) / 0.02 = 150 % of the growth from y,
    # |f_0|^2 / |y|^2 = 4.5 over the two seeds: 1/3 of the share per unit of it.
    np.testing.assert_allclose(terms['undone_share'], 1.5)
    np.testing.assert_allclose(terms['f0_over_y'], 4.5)
    np.testing.assert_allclose(terms['undone_share_per_f0'], 1 / 3)
    # Seed resamples of two seeds are both, one twice (1.5 / 3 = 0.5) or the
    # other (1.5 / 6 = 0.25), each a quarter of them: the 95 % interval.
    np.testing.assert_allclose(terms['undone_share_per_f0_lo'], 0.25)
    np.testing.assert_allclose(terms['undone_share_per_f0_hi'], 0.5)
    # Each seed's own fit, whose means are the table's terms.
    seeds = pd.read_csv(tmp_path / 'centring_ntk_scale_centering_seeds.csv')
    assert sorted(zip(seeds['width'], seeds['seed'])) == [
        (64, 0), (64, 1), (256, 0), (256, 1)]
    np.testing.assert_allclose(seeds.set_index(['width', 'seed'])['f0_over_y']
                               .loc[[(64, 0), (64, 1)]], [3.0, 6.0])
    np.testing.assert_allclose(seeds['undone_share'], 1.5)
    np.testing.assert_allclose(
        seeds.groupby('width')[['from_y', 'from_f0', 'from_f0_squared']].mean(),
        terms[['from_y', 'from_f0', 'from_f0_squared']], rtol=1e-12)
    np.testing.assert_allclose(seeds['undone_share_per_f0'],
                               1.5 / seeds['f0_over_y'])
    # Runs at one width: no figure against the width, the centring's still.
    one = fw_plots.plot(frame[frame['width'] == 256], tmp_path / 'one')
    assert tmp_path / 'one' / 'centring_ntk_drift_center_scale.png' in one
    assert not (tmp_path / 'one' / 'centring_ntk_drift.png').exists()


def test_centering_terms_fit_a_quadratic_in_one_minus_c():
    """``centering_terms`` recovers ``v(c) = p + q (1 - c) + r (1 - c)^2``
    and reports what a quadratic cannot fit; it refuses two centrings."""
    c = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    u = 1 - c
    wiggle = np.array([1.0, -2.0, 0.0, 2.0, -1.0]) * 1e-3
    terms = ntk_drift.centering_terms(c, 0.02 - 0.06 * u + 0.03 * u * u)
    assert terms[:3] == pytest.approx((0.02, -0.06, 0.03), abs=1e-12)
    assert terms.residual < 1e-12
    noisy = ntk_drift.centering_terms(c, 0.02 - 0.06 * u + 0.03 * u * u + wiggle)
    assert 1e-4 < noisy.residual < 2e-3
    with pytest.raises(ValueError, match='three or more distinct centrings'):
        ntk_drift.centering_terms([0.0, 1.0, 1.0], [0.1, 0.2, 0.2])
    # The plain net (c = 0) loses 0.06 - 0.03 of the 0.02 from fitting y: 150 %,
    # 0.5 per unit of an f_0 three times y's size; columns work alike.
    share = ntk_drift.undone_share(*terms[:3])
    assert share == pytest.approx(1.5)
    assert ntk_drift.undone_share_per_f0(*terms[:3], 3.0) == pytest.approx(0.5)
    columns = pd.DataFrame({'y': [0.02, 0.04], 'f0': [-0.06, -0.02], 'f0_sq': [0.03, 0.0]})
    np.testing.assert_allclose(
        ntk_drift.undone_share_per_f0(columns['y'], columns['f0'], columns['f0_sq'],
                                      np.array([3.0, 0.5])), [0.5, 1.0])


def test_drift_rows_are_the_last_step_of_every_drift_metric_drawn():
    """The tables read the NTK changes the figures draw (the networks' and
    the centred networks', with their scale and shape parts), each run at
    its last step only."""
    assert set(drift_tables.DRIFT_METRICS) == set(fw_plots.DRIFTS) | set(fw_plots.DRIFT_PARTS)
    frame = pd.DataFrame([
        {'run_dir': run, 'model': 'fc', 'width': 64, 'seed': 0, 'step': step,
         'metric': metric, 'value': 10 * step + i}
        for run, last in (('a', 100), ('b', 50)) for step in (0, last)
        for i, metric in enumerate(drift_tables.DRIFT_METRICS + ('test_loss',))])
    rows = drift_tables.drift_rows(frame)
    assert sorted(set(zip(rows['run_dir'], rows['step']))) == [('a', 100), ('b', 50)]
    assert sorted(rows['metric']) == sorted(drift_tables.DRIFT_METRICS * 2)


def test_leaf_groups_name_the_input_layer_hidden_layers_and_readout():
    """A bias joins the layer of the weight before it; the first layer is
    the input layer, the last the readout: an FC net with biases, a ResNet
    without (input projection, branches W_l, V_l, readout), a 1-d input
    whose first weight looks like a bias, a CNN's (1, 1, 1, C) biases."""
    groups = ntk_drift.leaf_groups
    assert groups([(64, 32), (1, 32), (32, 32), (1, 32), (32, 10), (1, 10)]) == [
        'input', 'input', 'hidden', 'hidden', 'readout', 'readout']
    assert groups([(64, 32)] + [(32, 32)] * 4 + [(32, 10)]) == (
        ['input'] + ['hidden'] * 4 + ['readout'])
    assert groups([(1, 32), (32,), (32, 1)]) == ['input', 'input', 'readout']
    assert groups([(3, 3, 3, 8), (1, 1, 1, 8), (3, 3, 8, 8), (1, 1, 1, 8),
                   (8, 10), (10,)]) == ['input', 'input', 'hidden', 'hidden',
                                        'readout', 'readout']
    with pytest.raises(ValueError, match='one layer only'):
        groups([(64, 10), (1, 10)])
    with pytest.raises(ValueError, match='got none'):
        groups([])
    # The layer_shape column's text reads back to the shape.
    for shape in [(64, 32), (1, 32), (3, 3, 3, 8), (32,), ()]:
        assert ntk_drift.shape_from_text(ntk_drift.shape_text(shape)) == shape
    assert ntk_drift.shape_text((1024, 10)) == '1024x10'
    assert ntk_drift.shape_text(()) == 'scalar'


def _layer_centering_rows() -> pd.DataFrame:
    """Synthetic ``experiment.ntk_layers`` rows of two nets at five
    centrings: an FC net (W, b per layer, 3 layers) at widths 64 and 256
    and a ResNet (input, two branch leaves, readout) at width 64 only; leaf
    ``i`` of seed ``s`` at width ``n``
    changes by ``(i + 1) (1 + s) (64 / n) q(c)`` with ``q(c) = 0.02 -
    0.06 (1 - c) + 0.03 (1 - c)^2``; the plain net's rows at each c alike."""
    nets = {'fc': ['64x{n}', '1x{n}', '{n}x{n}', '1x{n}', '{n}x10', '1x10'],
            'resnet': ['64x{n}', '{n}x{n}', '{n}x{n}', '{n}x10']}
    rows = []
    for model, shapes in nets.items():
        for c in (-1.0, 0.0, 0.5, 1.0, 2.0):
            u = 1 - c
            for width in ((64, 256) if model == 'fc' else (64,)):
                for seed in (0, 1):
                    for i, shape in enumerate(shapes):
                        scale = (i + 1) * (1 + seed) * 64 / width
                        common = dict(run_dir=f'runs/{model}/{c}', model=model,
                                      center_scale=c, width=width, seed=seed,
                                      layer=i, layer_shape=shape.format(n=width))
                        rows.append(dict(common, metric='ntk_layer_share', step=0,
                                         value=1.0 / len(shapes)))
                        for metric, value in (
                                ('ntk_layer_scale_change', -0.01 * scale),
                                ('ntk_layer_scale_change_centered',
                                 scale * (0.02 - 0.06 * u + 0.03 * u * u))):
                            for step in (50, 100):  # only the last step counts
                                rows.append(dict(common, metric=metric, step=step,
                                                 value=value * step / 100))
    return pd.DataFrame(rows).assign(experiment='layers')


def test_per_f0_interval_is_the_seed_scatter_of_the_ratio():
    """The seed-bootstrap interval of ``undone_share_per_f0``: a point where
    every seed agrees, about ``1/sqrt(seeds)`` wide where they scatter, around
    the value the seeds are drawn about; none from one seed or without
    ``f0_over_y``."""
    interval = drift_tables._per_f0_interval  # pylint: disable=protected-access

    def seeds(count, noise, rng):
        # from_y 0.02, from_f0 -0.06, from_f0_squared 0.03: share 1.5; f0 5.
        scatter = 1 + noise * rng.standard_normal((count, 4))
        return pd.DataFrame(np.array([0.02, -0.06, 0.03, 5.0]) * scatter,
                            columns=['from_y', 'from_f0', 'from_f0_squared',
                                     'f0_over_y'])

    rng = np.random.default_rng(1)
    assert interval(seeds(4, 0.0, rng)) == pytest.approx((0.3, 0.3))
    few, many = interval(seeds(8, 0.1, rng)), interval(seeds(128, 0.1, rng))
    assert few[0] < 0.3 < few[1] and many[0] < 0.3 < many[1]
    assert 2.5 < (few[1] - few[0]) / (many[1] - many[0]) < 6.5  # sqrt(16) = 4
    assert np.isnan(interval(seeds(1, 0.1, rng))).all()
    assert np.isnan(interval(seeds(4, 0.1, rng).assign(f0_over_y=np.nan))).all()
    # The same seeds give the same interval (a fixed generator).
    data = seeds(8, 0.1, rng)
    assert interval(data) == interval(data)


def test_layer_centering_fit_splits_the_terms_by_part_of_the_net(tmp_path, saved_figures):
    """Per leaf and per part of the net (input, hidden, readout, total),
    the quadratic in ``1 - c`` of the centred net's scale change is
    recovered exactly from synthetic rows; the parts' terms add up to the
    total's; the figure and both CSVs are written, and the per-leaf figure
    draws the runs at the default centring c = 1 only."""
    frame = _layer_centering_rows()
    # The FC runs' step-0 losses: |f_0|^2 / |y|^2 = 0.15 / 0.05 = 3 (the
    # ResNet's have none: NaN).
    fc_runs = frame[(frame['model'] == 'fc') & (frame['layer'] == 0)
                    & (frame['metric'] == 'ntk_layer_share')]
    losses = fc_runs.assign(metric='train_loss', predictor='net_centered',
                            value=0.05 + 0.15 * (1 - fc_runs['center_scale']) ** 2)
    leaves, groups = drift_tables.layer_centering_fit(pd.concat([frame, losses]))
    assert (leaves['seeds'] == 2).all() and (leaves['residual'] < 1e-12).all()
    leaf = leaves[(leaves['model'] == 'fc') & (leaves['width'] == 256)]
    # leaf i: (i + 1) * mean over seeds (1 + s) = 1.5 (i + 1), times 64 / 256.
    np.testing.assert_allclose(leaf.sort_values('layer')['from_f0'],
                               -0.06 * 1.5 * np.arange(1, 7) / 4, rtol=1e-9)
    fc = groups[(groups['model'] == 'fc') & (groups['width'] == 64)]
    assert list(fc['group']) == ['input', 'hidden', 'readout', 'total']
    fc = fc.set_index('group')
    for term, value in (('from_y', 0.02), ('from_f0', -0.06),
                        ('from_f0_squared', 0.03)):
        # FC leaves 0-1 (input), 2-3 (hidden), 4-5 (readout); seeds 1x, 2x.
        np.testing.assert_allclose(
            fc.loc[['input', 'hidden', 'readout', 'total'], term],
            value * 1.5 * np.array([1 + 2, 3 + 4, 5 + 6, 21]), rtol=1e-9)
        assert fc.loc['total', f'{term}_std'] == pytest.approx(
            abs(value) * 21 * np.std([1, 2], ddof=1))
    resnet = groups[(groups['model'] == 'resnet') & (groups['width'] == 64)]
    np.testing.assert_allclose(resnet.set_index('group').loc[
        ['input', 'hidden', 'readout'], 'from_y'], 0.02 * 1.5 * np.array([1, 5, 4]))
    np.testing.assert_allclose(groups['undone_share'], 1.5)  # (0.06 - 0.03) / 0.02
    for table in (leaves, groups):
        is_fc = table['model'] == 'fc'
        np.testing.assert_allclose(table.loc[is_fc, 'f0_over_y'], 3.0)
        np.testing.assert_allclose(table.loc[is_fc, 'undone_share_per_f0'], 0.5)
        assert table.loc[~is_fc, 'undone_share_per_f0'].isna().all()
    np.testing.assert_allclose(groups['undone_share_min'], 1.5)
    np.testing.assert_allclose(groups['undone_share_max'], 1.5)
    assert groups['same_signs'].all()
    # Two seeds whose from_y differ in sign: the mean's signs are not every
    # seed's, and each seed's own share is reported.
    c = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    mixed = pd.DataFrame({
        'model': 'fc', 'seed': np.repeat([0, 1], 5), 'center_scale': np.tile(c, 2),
        'value': np.concatenate([0.03 - 0.06 * (1 - c), -0.01 - 0.06 * (1 - c)])})
    fit = drift_tables._fit_centerings(mixed, ['model']).iloc[0]  # pylint: disable=protected-access
    assert fit['from_y'] == pytest.approx(0.01) and not fit['same_signs']
    assert (fit['undone_share_min'], fit['undone_share_max']) == pytest.approx((-6.0, 2.0))
    assert fit['undone_share'] == pytest.approx(6.0)
    # The parts add up to the whole, and the whole is the per-leaf sum.
    for _, net in groups.groupby(['model', 'width']):
        net = net.set_index('group')
        for term in ('from_y', 'from_f0', 'from_f0_squared'):
            assert net.loc[list(ntk_drift.LEAF_GROUPS), term].sum() == (
                pytest.approx(net.loc['total', term], rel=1e-12))
    drawn = {}

    def keep_axes(fig, name):
        drawn[name] = [ax.get_title() for ax in fig.axes]

    paths = fw_plots.plot(frame, tmp_path)
    for name, fig in saved_figures.items():
        keep_axes(fig, name)
    for file in ('layers_ntk_layer_groups_centering.png',
                 'layers_ntk_layer_groups_centering_terms.csv',
                 'layers_ntk_layer_groups_centering_seeds.csv',
                 'layers_ntk_layers_centering_terms.csv'):
        assert tmp_path / file in paths
    # Each seed's fit per part: seed s scales every term by 1 + s.
    seeds = pd.read_csv(tmp_path / 'layers_ntk_layer_groups_centering_seeds.csv')
    total = seeds[(seeds['model'] == 'fc') & (seeds['width'] == 64)
                  & (seeds['group'] == 'total')].set_index('seed')
    np.testing.assert_allclose(total['from_f0'], -0.06 * 21 * np.array([1, 2]))
    assert len(seeds) == 2 * len(groups)
    # Each net at its own widest width.
    assert drawn['layers_ntk_layer_groups_centering'] == ['FC, n=256', 'ResNet, n=64']
    # The per-leaf figure: one column per net, at c = 1 (a(1) = from_y).
    assert drawn['layers_ntk_layers'][:2] == ['FC, n=256', 'ResNet, n=64']
    assert len(drawn['layers_ntk_layers']) == 2 * 2
    table = pd.read_csv(tmp_path / 'layers_ntk_layers.csv')
    assert 'center_scale' not in table.columns
    centred = table[(table['metric'] == 'ntk_layer_scale_change_centered')
                    & (table['model'] == 'resnet') & (table['width'] == 64)]
    np.testing.assert_allclose(centred.sort_values('layer')['mean'],
                               0.02 * 1.5 * np.arange(1, 5))
    assert list(centred.sort_values('layer')['group']) == [
        'input', 'hidden', 'hidden', 'readout']
    parts = pd.read_csv(tmp_path / 'layers_ntk_layer_groups.csv')
    shares = parts[parts['metric'] == 'ntk_layer_share']
    np.testing.assert_allclose(shares.groupby(['model', 'width'])['mean'].sum(), 1.0)


def test_drift_against_alpha_is_the_last_steps_mean_per_width_and_alpha(tmp_path, saved_figures):
    """A ResNet run at 3 or more residual-branch scales gets the figure of
    its NTK change against alpha: the mean and std over seeds of the last
    step, per width and alpha; an FC run beside it (no alpha) is no line of
    it, and a ResNet at two alphas gives no figure."""
    rows = []
    for alpha in (0.0, 0.5, 2.0):
        for width in (64, 256):
            for seed in (0, 1):
                last = (1 + alpha) * (64 / width) * (1 + 0.1 * seed)
                for step, value in ((0, 0.0), (50, last / 2), (100, last)):
                    for metric, scale in (('ntk_drift', 1.0),
                                          ('ntk_drift_centered', 0.5)):
                        rows.append(dict(run_dir=f'runs/{alpha}', metric=metric,
                                         model='resnet', alpha=alpha,
                                         width=width, seed=seed, step=step,
                                         value=scale * value))
    for width in (64, 256):
        rows.append(dict(run_dir='runs/fc', metric='ntk_drift', model='fc',
                         alpha=np.nan, width=width, seed=0, step=100,
                         value=0.3 * 64 / width))
    frame = pd.DataFrame(rows).assign(experiment='drift')
    drawn = {}

    def keep_lines(fig, name):
        drawn[name] = []
        for ax in fig.axes:  # data lines: label before the slope -> colour
            handles, labels = ax.get_legend_handles_labels()
            drawn[name].append({
                label.removeprefix('centred ').split(':')[0]:
                handle.lines[0].get_color()
                for handle, label in zip(handles, labels)
                if hasattr(handle, 'lines')})

    paths = fw_plots.plot(frame, tmp_path)
    for name, fig in saved_figures.items():
        keep_lines(fig, name)
    assert tmp_path / 'drift_ntk_drift_alpha.png' in paths
    # The width figure: a panel for the nets, one for the centred nets; a
    # line has the same colour in both.
    nets, centred = drawn['drift_ntk_drift']
    assert len(nets) == 4 and len(centred) == 3  # the FC run has no centred net
    assert set(centred) < set(nets)
    assert all(centred[label] == nets[label] for label in centred)
    assert len(set(nets.values())) == 4
    table = pd.read_csv(tmp_path / 'drift_ntk_drift_alpha.csv')
    assert set(table['model']) == {'resnet'}
    assert len(table) == 12 and (table['seeds'] == 2).all()
    one = table[(table['width'] == 256) & (table['alpha'] == 2.0)].set_index(
        'metric')
    # (1 + 2) * 64 / 256 = 0.75 for seed 0, 0.825 for seed 1; centred half.
    assert one.loc['ntk_drift', 'mean'] == pytest.approx(0.7875)
    assert one.loc['ntk_drift', 'std'] == pytest.approx(0.075 / math.sqrt(2))
    assert one.loc['ntk_drift_centered', 'mean'] == pytest.approx(0.39375)
    # The width figure fits both, one line per alpha each: slope -1 exactly.
    slopes = pd.read_csv(tmp_path / 'drift_ntk_drift_slopes.csv')
    assert sorted(slopes.groupby('metric').size().items()) == [
        ('ntk_drift', 4), ('ntk_drift_centered', 3)]  # FC has no centred rows
    np.testing.assert_allclose(
        slopes[slopes['model'] == 'resnet']['slope'], -1.0, atol=0.05)
    # Two alphas are two lines of the width figure, not a sweep over alpha.
    two = frame[frame['alpha'] != 2.0]
    assert fw_plots.drift_against(two, 'alpha').empty
    fw_plots.plot(two.assign(experiment='two'), tmp_path)
    assert not (tmp_path / 'two_ntk_drift_alpha.csv').exists()
    assert (tmp_path / 'two_ntk_drift_slopes.csv').exists()


# ----------------------------------------------------------------------------
# Ensembles of networks (Lee et al. 2020, Sec. 3.3).


def test_ensemble_sizes():
    assert fw_rows.ensemble_sizes(1) == [1]
    assert fw_rows.ensemble_sizes(2) == [1, 2]
    assert fw_rows.ensemble_sizes(5) == [1, 2, 4, 5]
    assert fw_rows.ensemble_sizes(16) == [1, 2, 4, 8, 16]


def test_ensemble_is_the_mean_network_and_approaches_the_mean_dynamics(tmp_path):
    """The ensemble rows are those of the seeds' mean output: at step 0 the
    mean of the initial functions rebuilt here from the same seeds; its MSE is
    at most the members' mean MSE (a convex loss); K = 1 is seed 0's net; and
    a wide net's ensemble approaches the NTK dynamics from f_0 = 0 (the mean
    over initialisations) like 1/sqrt(K), the initial functions being
    independent."""
    seeds = list(range(8))
    cfg = compose(tmp_path, 'experiment=finite_width', 'model=fc',
                  'model.depth=2', 'dataset=gaussian', 'dataset.n_train=16',
                  'dataset.n_test=64', 'experiment.widths=[2048]',
                  f'experiment.seeds={seeds}', 'experiment.steps=40',
                  'experiment.eval_every=40', 'experiment.lr_fraction=0.5',
                  'experiment.references=[ntk_mean]', 'experiment.probe_size=0',
                  'experiment.centered=true', 'experiment.ensemble=true')
    runner.validate(cfg)
    frame = runner.run_job(cfg, tmp_path / 'run')
    ens = frame[frame['metric'].str.startswith('ensemble_')]
    assert sorted(ens['ensemble_size'].unique()) == [1, 2, 4, 8]
    assert set(ens['predictor']) == {'net', 'net_centered'}
    assert sorted(ens['step'].unique()) == [0, 40]

    def value(metric, size, step, predictor='net', split=None):
        rows = ens[(ens['metric'] == metric) & (ens['ensemble_size'] == size) &
                   (ens['step'] == step) & (ens['predictor'] == predictor)]
        if split is not None:
            rows = rows[rows['split'] == split]
        assert len(rows) == 1, (metric, size, step, predictor)
        return float(rows['value'].iloc[0])

    # Step 0: the mean of the seeds' initial functions, rebuilt independently;
    # the reference there is the zero function.
    data = hydra.utils.instantiate(cfg.dataset)
    wcfg = finite_width._model_cfg(cfg, 2048)
    init_fn, apply_fn, _ = hydra.utils.instantiate(
        wcfg.model, out_dim=data.y_train.shape[1])
    x_test = jnp.asarray(data.x_test, jnp.float32)
    with jax.enable_x64(False):
        f0 = [np.asarray(apply_fn(init_fn(jax.random.PRNGKey(s),
                                          x_test.shape)[1], x_test), np.float64)
              for s in seeds]
    for size in (1, 2, 4, 8):
        mean = np.mean(f0[:size], axis=0)
        np.testing.assert_allclose(
            value('ensemble_dist_ntk_mean', size, 0, split='test'),
            np.sqrt(np.mean(mean ** 2)), rtol=1e-5)
        np.testing.assert_allclose(
            value('ensemble_test_loss', size, 0),
            0.5 * np.mean((mean - data.y_test) ** 2), rtol=1e-5)
    net = frame[(frame['metric'] == 'test_loss') & (frame['predictor'] == 'net')]
    for step in (0, 40):
        members = net[net['step'] == step].set_index('seed')['value']
        # K = 1 is seed 0's network, row for row.
        assert value('ensemble_test_loss', 1, step) == members[0]
        for size in (2, 4, 8):  # Jensen: the mean's MSE <= the mean MSE
            assert value('ensemble_test_loss', size, step) <= (
                members[list(range(size))].mean() + 1e-12)
    # Trained, wide: the distance to the f_0 = 0 dynamics falls like
    # 1/sqrt(K) (sqrt(8) = 2.8 from K = 1 to 8; the finite-width and
    # discretisation gap keep it a little above).
    ratio = (value('ensemble_dist_ntk_mean', 8, 40, split='test') /
             value('ensemble_dist_ntk_mean', 1, 40, split='test'))
    assert 0.2 < ratio < 0.6, ratio
    # The centred nets all start at f = 0: their ensemble is already there.
    assert value('ensemble_dist_ntk_mean', 8, 0, 'net_centered', 'test') == 0
    paths = fw_plots.plot(frame, tmp_path / 'figs')
    assert tmp_path / 'figs' / 'finite_width_ensemble.png' in paths
    table = pd.read_csv(tmp_path / 'figs' / 'finite_width_ensemble.csv')
    drawn = table[(table['metric'] == 'dist_ntk_mean') &
                  (table['predictor'] == 'net')].set_index('ensemble_size')
    np.testing.assert_allclose(drawn.loc[8, 'value'], value(
        'ensemble_dist_ntk_mean', 8, 40, split='test'))
    limit = table[table['predictor'] == 'ntk_mean']
    assert len(limit) == 1 and limit['metric'].iloc[0] == 'test_loss'


def test_ensemble_of_members_at_different_learning_rates_has_no_time(tmp_path):
    """lr_kernel=empirical gives each seed its own rate: the members share
    steps, not times, so the rows have no ``t`` and no distance to the
    reference (which is at a time); at one rate they have both, and the
    ensemble is the members' mean output."""
    from ntkexp.records import RowWriter, read_rows  # pylint: disable=g-import-not-at-top
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    evaluator = fw_rows.Evaluator(training.get_loss('mse'), y, y,
                                        np.array([0, 1]), np.array([0, 1]))
    outs = [{'train': np.array([[2.0, 0.0], [0.0, 0.0]]),
             'test': np.array([[0.0, 1.0], [0.0, 3.0]])},
            {'train': np.array([[0.0, 0.0], [0.0, 2.0]]),
             'test': np.array([[2.0, 1.0], [0.0, 1.0]])}]
    reference = (np.zeros((1, 2, 2)), np.ones((1, 2, 2)))
    for lrs, run in (((0.5, 0.5), 'same'), ((0.5, 0.7), 'mixed')):
        calls = []
        with RowWriter(tmp_path / f'{run}.jsonl', {'experiment': 'x'}) as rows:
            members = fw_rows.SeedEnsemble(2, [10])
            for out, lr in zip(outs, lrs):
                members.add('net', 0, out)
                members.member_done(rows, evaluator, lr,
                                    lambda: calls.append(1) or reference,
                                    width=4)
        (tmp_path / run).mkdir()
        (tmp_path / f'{run}.jsonl').rename(tmp_path / run / 'rows.jsonl')
        frame = read_rows(tmp_path / run)
        two = frame[frame['ensemble_size'] == 2]
        two = two.assign(split=two['split'].fillna('') if 'split' in two
                         else '').set_index(['metric', 'split'])['value']
        # Mean output: train [[1,0],[0,1]] = y exactly; test [[1,1],[0,2]].
        assert two[('ensemble_train_loss', '')] == 0.0
        assert two[('ensemble_test_loss', '')] == pytest.approx(0.5 * 2 / 4)
        assert two[('ensemble_test_accuracy', '')] == 1.0
        if run == 'same':
            assert (frame['t'] == 5.0).all() and len(calls) == 2
            assert two[('ensemble_dist_ntk_mean', 'test')] == pytest.approx(
                np.sqrt(np.mean((np.array([[1, 1], [0, 2]]) - 1.0) ** 2)))
            assert two[('ensemble_dist_ntk_mean', 'train')] == pytest.approx(
                np.sqrt(0.5))
        else:
            assert frame.loc[frame['ensemble_size'] == 2].get(
                't', pd.Series(dtype=float)).isna().all()
            assert 'ensemble_dist_ntk_mean' not in set(
                frame.loc[frame['ensemble_size'] == 2, 'metric'])
            assert len(calls) == 1  # K = 1 only: one member, one rate


# ----------------------------------------------------------------------------
# L2 regularisation (weight decay, L2 towards the initialisation).


def test_l2_to_init_flow_is_gd_of_a_linear_model_and_ends_at_kernel_ridge():
    """A linear model (its NTK exact) trained by GD with l2/2 ||w - w_0||^2
    follows l2_to_init_flow at t = lr * steps (Euler error ~ lr), which ends
    at kernel ridge regression from f_0 with ridge l2 * y.size; at l2 -> 0
    it is nt.predict.gradient_descent_mse."""
    with jax.enable_x64(True):
        apply_fn, x, y, _, kernel = linear_problem(n=8, d=12)
        rng = np.random.RandomState(1)
        w0 = jnp.asarray(rng.randn(12, 1))
        x_test = jnp.asarray(rng.randn(5, 12))
        k = np.asarray(kernel)
        k_st = np.asarray(x_test @ x.T)
        f0, f0_test = np.asarray(x @ w0), np.asarray(x_test @ w0)
        l2 = 0.05
        lr = 0.01 * training.max_learning_rate(k, y.size, l2=l2)
        predict = kernel_dynamics.l2_to_init_flow(k, np.asarray(y), lr, l2)
        trainer = training.Trainer(apply_fn, training.mse_loss,
                                   training.make_optimizer('gd', lr), x, y,
                                   l2=l2, center=w0)
        steps = [0, 100, 400]
        f_train, f_test = predict(steps, f0, f0_test, k_st)
        state = trainer.init(w0)
        for i, step in enumerate(steps):
            state = trainer.advance(state, step)
            np.testing.assert_allclose(np.asarray(x @ state.params), f_train[i],
                                       atol=0.02 * np.abs(f_train[i] - f0).max() + 1e-12)
            np.testing.assert_allclose(np.asarray(x_test @ state.params),
                                       f_test[i], atol=0.02 * np.abs(
                                           f_test[i] - f0_test).max() + 1e-12)
        # t -> inf: kernel ridge regression from f_0, ridge l2 * y.size.
        ridge = np.linalg.solve(k + l2 * y.size * np.eye(8), np.asarray(y) - f0)
        end_train, end_test = predict([1e9], f0, f0_test, k_st)
        np.testing.assert_allclose(end_train[0], f0 + k @ ridge, rtol=1e-9)
        np.testing.assert_allclose(end_test[0], f0_test + k_st @ ridge, rtol=1e-9)
        assert np.abs(end_train[0] - np.asarray(y)).max() > 1e-3  # not interpolating
        # l2 -> 0: neural-tangents' unregularised closed form.
        tiny = kernel_dynamics.l2_to_init_flow(k, np.asarray(y), lr, 1e-12)
        free = nt.predict.gradient_descent_mse(k, np.asarray(y), learning_rate=lr)
        for step in (50, 300):
            ours = tiny([step], f0, f0_test, k_st)
            theirs = free(float(step), f0, f0_test, k_st)
            np.testing.assert_allclose(ours[0][0], np.asarray(theirs[0]), atol=1e-8)
            np.testing.assert_allclose(ours[1][0], np.asarray(theirs[1]), atol=1e-8)


def test_max_learning_rate_with_l2_is_the_gd_stability_bound():
    with jax.enable_x64(True):
        apply_fn, x, y, w0, kernel = linear_problem()
        top = float(np.linalg.eigvalsh(np.asarray(kernel))[-1])
        l2 = 0.3
        bound = training.max_learning_rate(kernel, y.size, l2=l2)
        assert bound == pytest.approx(2 / (top / y.size + l2), rel=1e-10)
        losses = {}
        for fraction in (0.95, 1.05):
            trainer = training.Trainer(
                apply_fn, training.mse_loss,
                training.make_optimizer('gd', fraction * bound), x, y, l2=l2)
            params = trainer.advance(trainer.init(w0 + 1.0), 400).params
            losses[fraction] = float(jnp.sum(params ** 2))
        assert losses[0.95] < 1e3 and losses[1.05] > 1e6  # diverged above


def test_end_to_end_l2_to_init_wide_net_follows_the_regularised_flow(tmp_path):
    """A wide FC net trained with L2 towards its initialisation stays close
    to the regularised NTK flow and to its linearisation, and moves its
    weights less than without the penalty; weight decay towards zero moves
    them more (it shrinks every weight)."""
    base = ['experiment=finite_width', 'model=fc', 'model.depth=2',
            'dataset=gaussian', 'dataset.n_train=16', 'dataset.n_test=16',
            'experiment.widths=[2048]', 'experiment.seeds=[0]',
            'experiment.steps=100', 'experiment.eval_every=50',
            'experiment.probe_size=0', 'experiment.lr_fraction=0.5']
    change, dist = {}, {}
    for name, extra in (('none', []),
                        ('init', ['experiment.l2=0.5', 'experiment.l2_center=init']),
                        ('zero', ['experiment.l2=0.5',
                                  'experiment.references=[linearized]'])):
        cfg = compose(tmp_path, *base, *extra)
        runner.validate(cfg)
        frame = runner.run_job(cfg, tmp_path / name)
        last = frame[frame['step'] == 100]
        change[name] = float(last[last['metric'] == 'weight_change']['value'].iloc[0])
        dist[name] = last[(last['metric'].str.startswith('dist_')) &
                          (last['split'] == 'test')].set_index('metric')['value']
        loss = frame[(frame['metric'] == 'train_loss') &
                     (frame['predictor'] == 'net')].sort_values('step')['value']
        assert loss.iloc[-1] < loss.iloc[0]  # stable at half the (l2) bound
    scale = float(np.sqrt(np.mean(hydra.utils.instantiate(
        compose(tmp_path, *base).dataset).y_test ** 2)))
    assert dist['init']['dist_ntk'] < 0.05 * scale, dist['init']
    assert dist['init']['dist_linearized'] < 0.05 * scale, dist['init']
    assert change['init'] < 0.9 * change['none'], change
    assert change['zero'] > change['none'], change


#: An NTK regression row at t = inf for the figure tests below.
KERNEL_ROW = dict(metric='kernel_test_accuracy', model='fc', dataset='cifar10',
                  parameterization='ntk', kernel='ntk', seed=0, value=0.26)


def _drawn_table(plot_fn, rows, tmp_path, figure, index):
    """Draws ``rows`` with ``plot_fn``; the CSV beside its PNG, indexed."""
    paths = plot_fn(pd.DataFrame(rows), tmp_path, 'lee')
    assert tmp_path / f'lee_{figure}.png' in paths
    return pd.read_csv(tmp_path / f'lee_{figure}.csv').set_index(index)


def test_l2_figure_puts_best_accuracy_against_l2_and_the_decay_exponent(tmp_path):
    """Per parameterisation and l2: the best accuracy over the steps (mean
    over seeds), the final one, and the decay exponent l2 * t at the last
    step (t = lr * steps), so parameterisations with very different
    learning rates line up."""
    rows = []
    for par, lr in (('ntk', 2.0), ('standard', 0.01)):
        for l2 in (0.0, 1e-3, 1e-2):
            for seed in (0, 1):
                for step, value in ((0, 0.1), (50, 0.3 + l2 + 0.01 * seed),
                                    (100, 0.2)):
                    rows.append(dict(metric='test_accuracy', model='fc',
                                     dataset='cifar10', parameterization=par,
                                     width=512, predictor='net', seed=seed,
                                     step=step, t=lr * step, value=value,
                                     l2=l2 or None, run_dir=f'{par}{l2}'))
    rows.append(dict(KERNEL_ROW, run_dir='ntk0.0'))
    table = _drawn_table(fw_plots.plot_l2, rows, tmp_path, 'l2',
                         ['parameterization', 'l2'])
    np.testing.assert_allclose(table.loc[('ntk', 1e-2), 'best'], 0.315)
    np.testing.assert_allclose(table.loc[('standard', 0.0), 'final'], 0.2)
    np.testing.assert_allclose(table.loc[('ntk', 1e-3), 'decay'], 1e-3 * 200)
    np.testing.assert_allclose(table.loc[('standard', 1e-2), 'decay'], 1e-2 * 1)
    assert (table['seeds'] == 2).all()
    # Two strengths only: no figure.
    two = pd.DataFrame([r for r in rows if r.get('l2') != 1e-2])
    assert fw_plots.plot_l2(two, tmp_path / 'none', 'lee') == []


def test_lr_figure_against_the_fraction_of_the_stability_bound(tmp_path):
    """Per lr_fraction: best / final accuracy, NTK drift at the last step,
    train-loss peak over its step-0 value (the catapult); a diverged seed is
    left out and counted."""
    rows = []
    for seed in (0, 1):  # every seed diverged: a row, nothing drawn
        rows.append(dict(model='fc', dataset='cifar10', parameterization='ntk',
                         width=512, seed=seed, lr_fraction=8.0, run_dir='run8',
                         metric='diverged_at_step', value=3, predictor='net'))
    for fraction in (0.5, 1.5, 3.0):
        for seed in (0, 1):
            run = f'run{fraction}'
            base = dict(model='fc', dataset='cifar10', parameterization='ntk',
                        width=512, seed=seed, lr_fraction=fraction, run_dir=run)
            if fraction == 3.0 and seed == 1:
                rows.append(dict(base, metric='diverged_at_step', value=4,
                                 predictor='net'))
            peak = 1.0 + (fraction > 1) * fraction  # loss rises above 1
            for step, loss, acc in ((0, 1.0, 0.1), (5, peak, 0.2),
                                    (10, 0.1, 0.3 + 0.01 * seed)):
                rows.append(dict(base, metric='train_loss', predictor='net',
                                 step=step, value=loss * (10.0 if seed else 1.0)))
                rows.append(dict(base, metric='test_accuracy', predictor='net',
                                 step=step, value=acc))
            rows.append(dict(base, metric='ntk_drift', probe_size=16, step=10,
                             value=0.01 * fraction ** 2))
    table = _drawn_table(fw_plots.plot_lr, rows, tmp_path, 'lr', 'lr_fraction')
    np.testing.assert_allclose(table.loc[0.5, 'best'], 0.305)
    np.testing.assert_allclose(table.loc[3.0, 'best'], 0.30)  # seed 1 left out
    assert table.loc[3.0, 'seeds'] == 1 and table.loc[3.0, 'diverged'] == 1
    np.testing.assert_allclose(table['ntk_drift'][:3], [0.0025, 0.0225, 0.09])
    np.testing.assert_allclose(table['loss_peak'][:3], [1.0, 2.5, 4.0])
    assert table.loc[8.0, 'seeds'] == 0 and table.loc[8.0, 'diverged'] == 2


def test_weight_decay_leaves_config_kernel_references_out_and_refuses_given_ones(
        tmp_path, monkeypatch):
    """experiment.l2 alone (references [ntk, linearized] from the config)
    runs without the kernel dynamics, which weight decay towards zero has no
    kernel form for; references named on the command line are refused with
    the fix; L2 to init keeps them."""
    cfg = compose(tmp_path, 'experiment=finite_width', 'experiment.l2=0.1')
    runner.validate(cfg)
    assert finite_width.references_of(cfg, given=set()) == ['linearized']
    assert finite_width.references_of(
        cfg, given={'experiment.references'}) == ['ntk', 'linearized']
    monkeypatch.setattr(runner, 'command_line_keys',
                        lambda: {'experiment.l2', 'experiment.references'})
    with pytest.raises(runner.ConfigError, match='experiment.l2_center=init'):
        runner.validate(cfg)
    cfg = compose(tmp_path, 'experiment=finite_width', 'experiment.l2=0.1',
                  'experiment.l2_center=init')
    runner.validate(cfg)
    assert finite_width.references_of(cfg, given=set()) == ['ntk', 'linearized']


def test_width_accuracy_figure_per_predictor_and_width(tmp_path):
    """Best / final test accuracy per predictor and width (mean over seeds);
    a predictor that diverged at one width and seed is left out there only."""
    rows = []
    for width in (32, 128, 512):
        for seed in (0, 1):
            for predictor, top in (('net', 0.15), ('net_centered', 0.25)):
                for step, value in ((0, 0.1), (50, top + width / 1e4 + 0.01 * seed),
                                    (100, top)):
                    rows.append(dict(metric='test_accuracy', model='fc',
                                     dataset='cifar10', parameterization='ntk',
                                     width=width, seed=seed, predictor=predictor,
                                     step=step, value=value, run_dir='r'))
    rows.append(dict(metric='diverged_at_step', model='fc', width=32, seed=1,
                     predictor='net', value=5, run_dir='r',
                     parameterization='ntk', dataset='cifar10'))
    rows.append(dict(KERNEL_ROW, run_dir='r'))
    table = _drawn_table(fw_plots.plot_width_accuracy, rows, tmp_path,
                         'width_accuracy', ['predictor', 'width'])
    np.testing.assert_allclose(table.loc[('net', 512), 'best'], 0.15 + 0.0512 + 0.005)
    np.testing.assert_allclose(table.loc[('net_centered', 128), 'final'], 0.25)
    assert table.loc[('net', 32), 'seeds'] == 1  # seed 1 diverged
    assert table.loc[('net_centered', 32), 'seeds'] == 2


def test_drift_title_says_each_runs_last_step_when_they_differ(tmp_path, saved_figures):
    """The title took the first row's step ('after 10 steps' over runs of 5,
    10 and 100 steps); with one length it still names it."""
    def rows(lasts):
        return pd.DataFrame([
            {'run_dir': f'{width}', 'model': 'fc', 'width': width, 'seed': 0, 'step': step,
             'metric': 'ntk_drift', 'predictor': 'net', 'value': 0.1 * step / width}
            for width, last in lasts for step in (0, last)])

    def title():
        fig = saved_figures['x_ntk_drift']
        return fig.axes[0].get_title() or fig._suptitle.get_text()  # pylint: disable=protected-access

    fw_plots.plot_ntk_drift(rows([(16, 5), (64, 10), (256, 100)]), tmp_path, 'x')
    assert title().endswith("at each run's last step (5-100)")
    fw_plots.plot_ntk_drift(rows([(16, 10), (64, 10)]), tmp_path, 'x')
    assert title().endswith('after 10 steps')
