"""experiment=kernel_regression against neural-tangents' own predictor.

`nt.predict.gradient_descent_mse_ensemble` is the reference for every row the
experiment writes: test MSE at finite and infinite time, the training MSE at
finite time, and the mean predictive variance of the NNGP posterior and of the
NTK-trained ensemble (Lee et al. 2019, Eq. 16), with ``experiment.variance``.
"""

from __future__ import annotations

import math

import hydra
import jax
import numpy as np
import pytest
from hydra.utils import instantiate

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import neural_tangents as nt

from ntkexp import cli
from ntkexp import runner
from ntkexp.experiments.kernel_regression import make_engine

DIAG_REG = 1e-3
T = 2.0


def _compose(tmp_path, *overrides):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                     version_base='1.3'):
        return hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false', *overrides])


@pytest.fixture(scope='module')
def run_and_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp('kr')
    cfg = _compose(root, 'dataset.n_train=60', 'dataset.n_test=20',
                   'experiment.variance=true', f'experiment.t=[{T},null]',
                   f'experiment.diag_reg={DIAG_REG}')
    frame = runner.run_job(cfg, root / 'run')
    data = instantiate(cfg.dataset)
    y_train = np.asarray(data.y_train, np.float64)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=y_train.shape[1])
    with jax.enable_x64(True):
        x_train = np.asarray(data.x_train, np.float64)
        x_test = np.asarray(data.x_test, np.float64)
        predict = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, x_train, y_train, diag_reg=DIAG_REG)
        ref = {}
        for t in (T, None):
            out = predict(t, x_test, ('nngp', 'ntk'), compute_cov=True)
            for kernel in ('nngp', 'ntk'):
                mean = np.asarray(getattr(out, kernel).mean)
                cov = np.asarray(getattr(out, kernel).covariance)
                key = math.inf if t is None else t
                ref[kernel, key, 'mse'] = np.mean((mean - data.y_test) ** 2)
                ref[kernel, key, 'variance'] = np.mean(np.diag(cov))
            train = predict(t, x_train, ('nngp', 'ntk'), compute_cov=False)
            for kernel in ('nngp', 'ntk'):
                ref[kernel, math.inf if t is None else t, 'train_mse'] = np.mean(
                    (np.asarray(getattr(train, kernel)) - y_train) ** 2)
    return frame, ref


@pytest.mark.parametrize('kernel', ['nngp', 'ntk'])
@pytest.mark.parametrize('t', [T, math.inf])
def test_rows_equal_neural_tangents_predictor(run_and_reference, kernel, t):
    frame, ref = run_and_reference
    rows = frame[(frame.kernel == kernel) & (frame.t == t)]
    got = dict(zip(rows.metric, rows.value))
    want = {'mse': ref[kernel, t, 'mse']}
    if math.isinf(t):
        # The posterior (NNGP) and the trained ensemble's (NTK) variance.
        want['variance'] = ref[kernel, t, 'variance']
        assert 'train_mse' not in got
    else:
        want['train_mse'] = ref[kernel, t, 'train_mse']
        assert 'variance' not in got  # only at t = inf
    for metric, value in want.items():
        np.testing.assert_allclose(got[metric], value, rtol=1e-8, err_msg=metric)
    assert 0 < got['mse'] < 0.2


@pytest.mark.parametrize('model', ['fc', 'cnn_gap'])
def test_engine_diagonal_equals_the_kernels_diagonal(tmp_path, model):
    overrides = ['model=fc'] if model == 'fc' else [
        'model=cnn', 'model.readout=gap', 'model.depth=2']
    cfg = _compose(tmp_path, *overrides)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=1)
    rng = np.random.RandomState(0)
    shape = (7, 16) if model == 'fc' else (7, 5, 5, 2)
    x = rng.randn(*shape)
    with jax.enable_x64(True):
        engine = make_engine(cfg, kernel_fn, ('nngp', 'ntk'))
        full = engine(x, None)
        diag = engine.diagonal(x, chunk=3)  # 3 chunks, the last one padded
    for g in ('nngp', 'ntk'):
        assert diag[g].shape == (7,)
        # Not bit for bit: at correlation 1 neural-tangents' ReLU step is
        # sqrt(rounding)-sized noise that depends on XLA's fusion (about 1e-9
        # relative in float64; docs/fastconv.md, "Correlation 1 is exact").
        np.testing.assert_allclose(diag[g], np.diag(full[g]), rtol=1e-8)


def test_validation_split_rides_with_the_test_points(tmp_path, run_and_reference):
    """``dataset.n_valid``: rows ``val_mse`` / ``val_accuracy`` equal
    neural-tangents' predictor on the validation inputs, at every ``t``;
    the test rows (and the variance, of the test points) are those of the
    run without a validation split."""
    frame_plain, ref = run_and_reference
    cfg = _compose(tmp_path, 'dataset.n_train=60', 'dataset.n_test=20',
                   'dataset.n_valid=30', 'experiment.variance=true',
                   f'experiment.t=[{T},null]', f'experiment.diag_reg={DIAG_REG}')
    frame = runner.run_job(cfg, tmp_path / 'run')
    data = instantiate(cfg.dataset)
    assert data.n_valid == 30
    y_train = np.asarray(data.y_train, np.float64)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=y_train.shape[1])
    with jax.enable_x64(True):
        predict = nt.predict.gradient_descent_mse_ensemble(
            kernel_fn, np.asarray(data.x_train, np.float64), y_train, diag_reg=DIAG_REG)
        for t in (T, None):
            out = predict(t, np.asarray(data.x_valid, np.float64), ('nngp', 'ntk'))
            for kernel in ('nngp', 'ntk'):
                mean = np.asarray(getattr(out, kernel))
                rows = frame[(frame.kernel == kernel)
                             & (frame.t == (math.inf if t is None else t))]
                got = dict(zip(rows.metric, rows.value))
                np.testing.assert_allclose(
                    got['val_mse'], np.mean((mean - data.y_valid) ** 2), rtol=1e-8)
                assert got['val_accuracy'] == np.mean(
                    mean.argmax(1) == data.labels_valid)
                np.testing.assert_allclose(got['mse'], ref[kernel, rows.t.iloc[0], 'mse'],
                                           rtol=1e-8)
                if t is None:
                    np.testing.assert_allclose(
                        got['variance'], ref[kernel, math.inf, 'variance'], rtol=1e-8)
    plain = frame_plain[frame_plain.metric.isin(['mse', 'variance', 'train_mse'])]
    assert len(frame[frame.metric.isin(['mse', 'variance', 'train_mse'])]) == len(plain)
    assert frame[frame.metric == 'kernel_seconds']['n_valid'].tolist() == [30]


def test_rows_of_a_whole_split_carry_its_size(tmp_path):
    """``dataset.n_test=null`` (all of the digits' 360 test images): every row
    says ``n_test=360``, as a run of ``dataset.n_test=360`` does (it was blank
    but for the kernel_seconds row, so collect split the two)."""
    cfg = _compose(tmp_path, 'dataset.n_train=40', 'dataset.n_test=null',
                   'experiment.diag_reg=1e-3', "experiment.kernels=[nngp]")
    frame = runner.run_job(cfg, tmp_path / 'run')
    assert set(frame['n_test']) == {360} and set(frame['n_train']) == {40}
    explicit = runner.run_job(_compose(tmp_path, 'dataset.n_train=40', 'dataset.n_test=360',
                                       'experiment.diag_reg=1e-3', "experiment.kernels=[nngp]"),
                              tmp_path / 'explicit')
    accuracy = [f[f['metric'] == 'accuracy'][['n_test', 'value']].to_numpy().tolist()
                for f in (frame, explicit)]
    assert accuracy[0] == accuracy[1]
