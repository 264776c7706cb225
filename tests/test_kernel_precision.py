"""Floating-point precision and the critical dataset size (Lee et al. 2020).

:mod:`ntkexp.float_noise` against exact values (float32 / float16 casts,
power laws, the closed-form critical size, linear solves), the noise model
against a Monte Carlo kernel with a known spectrum, and the experiment end to
end on digits: float32 changes nothing there, a 4-bit kernel collapses where
its critical size says, and the figure's table says so.
"""

from __future__ import annotations

import math

import hydra
import numpy as np
import pandas as pd
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX)

from ntkexp import cli
from ntkexp import float_noise
from ntkexp import host_memory
from ntkexp import runner
from ntkexp.experiments import kernel_precision
from ntkexp.plots import kernel_precision as precision_plot


def test_round_mantissa_is_the_float32_and_float16_cast():
    x = np.random.default_rng(0).normal(size=5000) * 10.0 ** np.random.default_rng(
        1).uniform(-3, 3, size=5000)
    np.testing.assert_array_equal(float_noise.round_mantissa(x, 23),
                                  x.astype(np.float32).astype(np.float64))
    small = x[(np.abs(x) > 2.0 ** -14) & (np.abs(x) < 60000)]   # float16 normal range
    np.testing.assert_array_equal(float_noise.round_mantissa(small, 10),
                                  small.astype(np.float16).astype(np.float64))
    np.testing.assert_array_equal(float_noise.round_mantissa(x, 52), x)


def test_round_mantissa_by_hand():
    # 0.75 = 1.1b x 2^-1 keeps one bit; 0.625 = 1.01b x 2^-1 ties to 1.0b (even).
    np.testing.assert_array_equal(
        float_noise.round_mantissa(np.array([0.75, 0.625, 0.875, -3.0, 0.0]), 1),
        [0.75, 0.5, 1.0, -3.0, 0.0])
    with pytest.raises(ValueError, match='positive integer'):
        float_noise.round_mantissa(np.ones(2), 0)


def test_relative_noise_is_rms_over_mean_diagonal():
    k = np.diag([1.0, 3.0])       # mean diagonal 2
    noisy = k + np.array([[0.1, -0.1], [-0.1, 0.1]])
    assert float_noise.relative_noise(noisy, k) == pytest.approx(0.05, rel=1e-12)
    assert float_noise.relative_noise(k, k) == 0.0
    with pytest.raises(ValueError, match='positive diagonal'):
        float_noise.relative_noise(k, -k)


def test_fit_power_law_recovers_an_exact_power_law():
    m, alpha, c = 400, 1.3, 0.02
    eigenvalues = m * c * np.arange(1, m + 1) ** -alpha
    fitted = float_noise.fit_power_law(np.random.default_rng(0).permutation(eigenvalues))
    np.testing.assert_allclose(fitted, (alpha, c), rtol=1e-10)
    with pytest.raises(ValueError, match='positive eigenvalues'):
        float_noise.fit_power_law(-eigenvalues)


def test_critical_size_is_where_the_smallest_eigenvalue_meets_the_noise():
    alpha, c, sigma = 1.4, 0.05, 1e-6
    m = float_noise.critical_size(alpha, c, sigma)
    # C m^(1 - alpha) = sqrt(2 m) sigma at m*.
    assert c * m ** (1 - alpha) == pytest.approx(math.sqrt(2 * m) * sigma, rel=1e-10)
    assert float_noise.critical_size(0.5, c, sigma) == math.inf
    assert float_noise.critical_size(alpha, c, 0.0) == math.inf
    # Less noise, a larger critical size.
    assert float_noise.critical_size(alpha, c, sigma / 10) > m
    assert float_noise.noise_floor(sigma, 50) == pytest.approx(0.2 * sigma)


def test_eigen_solver_is_the_linear_solve_also_for_indefinite_kernels():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 30))
    y = rng.normal(size=(30, 3))
    k_test = rng.normal(size=(7, 30))
    for k in (a @ a.T + np.eye(30), a + a.T):        # positive definite; indefinite
        solver = float_noise.EigenSolver(k, y)
        scale = np.mean(np.diag(k))
        for reg in (0.0, 0.3):
            expected = k_test @ np.linalg.solve(k + reg * scale * np.eye(30), y)
            np.testing.assert_allclose(solver.predict(k_test, reg), expected,
                                       rtol=1e-8, atol=1e-10)
    solver = float_noise.EigenSolver(np.diag([2.0, -1.0, 0.5, -0.25]), np.ones((4, 1)))
    assert solver.negative_count() == 2
    assert solver.min_eigenvalue() == pytest.approx(-1.0 / 0.3125)


def test_noise_model_on_a_kernel_with_a_known_power_law_spectrum():
    """A Gram matrix with eigenvalues ``m C i^-alpha`` plus symmetric noise of
    RMS sigma: its eigenvalues stay put above the noise's ``sqrt(2 m) sigma``
    and are scrambled below it."""
    m, alpha, c = 600, 2.0, 0.05
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(m, m)))
    exact = m * c * np.arange(1, m + 1) ** -alpha
    k = (q * exact) @ q.T
    sigma = 1e-3 * np.mean(np.diag(k))
    noise = rng.normal(size=(m, m)) * sigma / math.sqrt(2)
    noisy = k + noise + noise.T                   # off-diagonal RMS sigma
    s = float_noise.mean_diagonal(k)
    assert float_noise.relative_noise(noisy, k) == pytest.approx(sigma / s, rel=0.05)
    noisy_values = np.sort(np.linalg.eigvalsh(noisy))[::-1]
    floor = math.sqrt(2 * m) * sigma
    above = exact > 10 * floor
    below = exact < floor / 10
    assert above.sum() > 30 and below.sum() > 200
    np.testing.assert_allclose(noisy_values[above], exact[above], rtol=0.2)
    # Below the floor the noise sets the eigenvalues: some are negative.
    assert np.median(np.abs(noisy_values[below])) > 5 * np.median(exact[below])
    assert np.sum(noisy_values < 0) > 0.25 * below.sum()
    # The critical size of these values is where the m-th eigenvalue meets it.
    m_star = float_noise.critical_size(alpha, c, sigma / s)
    assert c * m_star ** (1 - alpha) == pytest.approx(math.sqrt(2 * m_star) * sigma / s)


def test_train_sizes_and_nested_balanced_subsets():
    assert kernel_precision.train_sizes(None, 1437) == [
        100, 146, 214, 313, 459, 671, 982, 1437]
    assert kernel_precision.train_sizes(None, 50) == [50]
    assert kernel_precision.train_sizes([40, 20, 40], 50) == [20, 40]
    with pytest.raises(ValueError, match='raise dataset.n_train'):
        kernel_precision.train_sizes([60], 50)
    labels = np.repeat(np.arange(5), 20)
    subsets = kernel_precision.nested_subsets(labels, [10, 35, 100], seed=3)
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) <= set(large)
    np.testing.assert_array_equal(np.bincount(labels[subsets[0]]), [2] * 5)
    assert len(subsets[1]) == 35 and np.ptp(np.bincount(labels[subsets[1]])) <= 1
    unlabelled = kernel_precision.nested_subsets(None, [5, 9], seed=0)
    assert set(unlabelled[0]) <= set(unlabelled[1])


def _compose(tmp_path, *overrides):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        return hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false',
            'experiment=kernel_precision', *overrides])


def test_kernel_precision_experiment_on_digits(tmp_path):
    cfg = _compose(tmp_path, 'dataset.n_train=400', 'dataset.n_test=150',
                   'experiment.train_sizes=[50,100,200,400]',
                   'experiment.mantissa_bits=[23,12,4]', 'experiment.diag_reg=[0.0]')
    frame = runner.run_job(cfg, tmp_path / 'run')
    acc = frame[frame.metric == 'accuracy'].set_index(
        ['kernel', 'mantissa_bits', 'rounding', 'train_size'])['value'].sort_index()
    for kernel in ('nngp', 'ntk'):
        reference = acc.xs((kernel, 52, 'computed'))
        assert reference.loc[400] > 0.9
        # float32 (computed or rounded) and 12 bits change nothing at these sizes.
        for version in ((23, 'computed'), (23, 'rounded'), (12, 'rounded')):
            np.testing.assert_allclose(acc.xs((kernel, *version)), reference, atol=0.01)
    # 4 bits: the NNGP (faster spectral decay) collapses at 400 digits.
    assert acc.xs(('nngp', 4, 'rounded')).loc[400] < 0.5
    rows = frame.set_index(['metric', 'kernel', 'mantissa_bits', 'rounding'])['value']
    sigma = {b: rows.loc[('noise_sigma', 'nngp', b, 'rounded')] for b in (23, 12, 4)}
    for bits, value in sigma.items():   # entries' rounding error ~ 2^-(b+1) / sqrt(3)
        assert 0.1 < value / (2.0 ** -(bits + 1) / math.sqrt(3)) < 1.5
    assert 0 < rows.loc[('noise_sigma', 'nngp', 23, 'computed')] < 1e-6
    assert rows.loc[('noise_sigma', 'nngp', 52, 'computed')] == 0
    critical = {b: rows.loc[('critical_size', 'nngp', b, 'rounded')] for b in (23, 12, 4)}
    assert critical[23] > critical[12] > 400 > critical[4]
    assert np.isinf(rows.loc[('critical_size', 'nngp', 52, 'computed')])
    alpha = frame[frame.metric == 'power_law_alpha'].set_index('kernel')['value']
    assert alpha['nngp'] > alpha['ntk'] > 0.5
    # Exact kernels have no negative eigenvalues; the 4-bit one has many.
    negative = frame[frame.metric == 'negative_eigenvalues'].set_index(
        ['kernel', 'mantissa_bits', 'rounding', 'train_size'])['value'].sort_index()
    assert negative.xs(('nngp', 52, 'computed')).max() == 0
    assert negative.loc[('nngp', 4, 'rounded', 400)] > 20

    paths = precision_plot.plot(frame, tmp_path / 'figures')
    assert [p.name for p in paths] == ['precision.png', 'precision.pdf', 'precision.csv']
    table = pd.read_csv(tmp_path / 'figures' / 'precision.csv').set_index(
        ['kernel', 'version'])
    assert table.loc[('nngp', '4 bits rounded'), 'breaks_at'] <= 400
    assert np.isnan(table.loc[('nngp', 'float64'), 'breaks_at'])
    assert np.isnan(table.loc[('ntk', 'float32'), 'breaks_at'])


@pytest.mark.parametrize('override, message', [
    ('precision=float32', 'use precision=float64'),
    ('experiment.mantissa_bits=[60]', 'integers from 1 to 51'),
    ('experiment.kernels=[nngp,gp]', 'give nngp and/or ntk'),
    ('experiment.diag_reg=[-1.0]', 'a number >= 0'),
    ('experiment.train_sizes=[1]', 'integers >= 2'),
    ('experiment.fit=[0.5,0.1]', '0 < lo < hi <= 1'),
])
def test_kernel_precision_bad_options_get_one_clear_error(tmp_path, override, message):
    cfg = _compose(tmp_path, override)
    with pytest.raises(runner.ConfigError, match=message):
        runner.validate(cfg)
    assert not (tmp_path / 'run').exists()


def test_kernel_precision_on_regression_targets_plots_the_mse(tmp_path):
    """Without labels: random nested subsets, MSE rows, and the figure on them."""
    cfg = _compose(tmp_path, 'dataset=sphere', 'dataset.n_train=120', 'dataset.n_test=60',
                   '~dataset.standardize', '~dataset.targets', 'experiment.float32=false',
                   'experiment.train_sizes=[30,120]', 'experiment.mantissa_bits=[3]',
                   'experiment.diag_reg=[0.0]', 'experiment.kernels=[ntk]')
    frame = runner.run_job(cfg, tmp_path / 'run')
    assert 'accuracy' not in set(frame.metric)
    mse = frame[frame.metric == 'mse'].set_index(['mantissa_bits', 'train_size'])['value']
    assert mse.loc[(52, 120)] < mse.loc[(52, 30)]     # more data, a better fit of x1*x2
    paths = precision_plot.plot(frame, tmp_path / 'figures')
    table = pd.read_csv(paths[-1]).set_index('version')
    assert table.loc['float64', 'mse'] == pytest.approx(mse.loc[(52, 120)])
    assert list(table.index) == ['float64', '3 bits rounded']


def test_host_memory_check_names_the_largest_n_train_that_fits():
    need = kernel_precision.precision_bytes(1000, 100, 2, True)
    assert need == 2 * (1000 ** 2 + 100 * 1000) * 12 + (1000 ** 2 + 100 * 1000) * 8 + \
        kernel_precision.SOLVE_COPIES * 1000 ** 2 * 8
    kernel_precision.check_host_memory(1000, 100, ('nngp', 'ntk'), True, available=need)
    with pytest.raises(host_memory.HostMemoryError) as error:
        kernel_precision.check_host_memory(20000, 2000, ('nngp', 'ntk'), True,
                                           available=8 * host_memory.GIB)
    message = str(error.value)
    fits = int(message.split('dataset.n_train=')[1].split()[0])
    assert kernel_precision.precision_bytes(fits, 2000, 2, True) <= 8 * host_memory.GIB
    assert kernel_precision.precision_bytes(fits + 1, 2000, 2, True) > 8 * host_memory.GIB
    assert 'experiment.float32=false' in message and 'experiment.kernels=[ntk]' in message
