"""Tests of experiment ``nads`` (Ortiz-Jimenez et al. 2020, "Neural Anisotropy
Directions"): Fourier directions, the directional data, NAD estimation, the
kernel view, configs and an end-to-end run."""

from __future__ import annotations

import json

import hydra
import jax
import numpy as np
import pandas as pd
import pytest

import ntkexp  # noqa: F401  (before neural_tangents)
import ntkexp.cli
from ntkexp import anisotropy as an
from ntkexp import models
from ntkexp import runner
from ntkexp import solve


def compose(overrides):
    with hydra.initialize_config_dir(config_dir=str(ntkexp.cli.CONF_DIR),
                                     version_base='1.3'):
        return hydra.compose('config', overrides=list(overrides))


# ---------------------------------------------------------------------------
# Fourier directions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('height,width', [(8, 8), (6, 5), (4, 6), (3, 3)])
def test_fourier_basis_is_orthonormal_and_complete(height, width):
    basis, labels = an.fourier_basis(height, width)
    assert basis.shape == (height * width, height * width)
    np.testing.assert_allclose(basis @ basis.T, np.eye(height * width), atol=1e-12)
    # Square and orthonormal rows: a complete basis (B^T B = I as well).
    np.testing.assert_allclose(basis.T @ basis, np.eye(height * width), atol=1e-12)
    assert len(set(labels)) == len(labels)


def test_fourier_direction_is_the_dft_basis_image():
    height, width, i, j = 8, 6, 3, 2
    delta = np.zeros((height, width))
    delta[i, j] = 1.0
    basis_image = np.fft.ifft2(delta)  # exp(+2 pi i (i h / H + j w / W)) / (H W)
    for part, want in (('real', basis_image.real), ('imag', basis_image.imag)):
        v = an.fourier_direction(height, width, i, j, part)[:, :, 0]
        np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-12)
    # (i, j) and (-i, -j) give the same line: equal cosines, opposite sines.
    np.testing.assert_allclose(an.fourier_direction(8, 6, 3, 2),
                               an.fourier_direction(8, 6, -3, -2), atol=1e-12)
    np.testing.assert_allclose(an.fourier_direction(8, 6, 3, 2, 'imag'),
                               -an.fourier_direction(8, 6, -3, -2, 'imag'),
                               atol=1e-12)


def test_fourier_direction_channels_and_norm():
    v = an.fourier_direction(4, 4, 1, 2, channels=3)
    assert v.shape == (4, 4, 3)
    assert np.linalg.norm(v) == pytest.approx(1.0)
    np.testing.assert_array_equal(v[..., 0], v[..., 2])


def test_imaginary_part_of_self_conjugate_frequency_is_an_error():
    for i, j in [(0, 0), (4, 0), (0, 4), (4, 4)]:
        assert an.is_self_conjugate(i, j, 8, 8)
        with pytest.raises(ValueError, match='imaginary part'):
            an.fourier_direction(8, 8, i, j, 'imag')


def test_frequency_grid_counts():
    # Distinct directions: (H W + 4) / 2 cosines and (H W - 4) / 2 sines on 8x8.
    assert len(an.fourier_frequencies(8, 8, 1, 'real')) == 34
    assert len(an.fourier_frequencies(8, 8, 1, 'imag')) == 30
    # Stride 2 on 8x8: i, j in {0, 2, 4, 6} -> 16 pairs, 10 after (i,j) ~ (-i,-j).
    grid = an.fourier_frequencies(8, 8, 2, 'real')
    assert len(grid) == 10
    assert all(i % 2 == 0 and j % 2 == 0 for i, j in grid)
    assert [an.signed(k, 8) for k in range(8)] == [0, 1, 2, 3, -4, -3, -2, -1]


# ---------------------------------------------------------------------------
# Directional data
# ---------------------------------------------------------------------------

def test_directional_data_is_linearly_separable_along_v():
    rng = np.random.default_rng(0)
    v = an.fourier_direction(8, 8, 2, 3)
    x, y = an.sample_directional(v, 1000, epsilon=0.5, sigma=3.0, rng=rng)
    assert x.shape == (1000, 8, 8, 1)
    assert np.sum(y == 1) == 500 and np.sum(y == -1) == 500
    proj = x.reshape(1000, -1) @ v.ravel()
    # <x, v> = epsilon * y exactly: the linear classifier sign(<x, v>) is perfect.
    np.testing.assert_allclose(proj, 0.5 * y, atol=1e-10)
    assert np.mean(np.sign(proj) == y) == 1.0
    # ... while the noise is large: no single pixel separates the classes.
    pixel_acc = np.mean(np.sign(x.reshape(1000, -1)) == y[:, None], axis=0)
    assert pixel_acc.max() < 0.6


def test_noise_is_isotropic_in_the_orthogonal_complement():
    rng = np.random.default_rng(1)
    d_side, sigma, n = 4, 2.0, 40000
    v = an.fourier_direction(d_side, d_side, 1, 1, 'imag')
    flat_v = v.ravel()
    y = an.balanced_labels(n, rng)
    noise = an.directional_noise(n, v.shape, sigma, rng)
    x = an.directional_data(v, y, noise, epsilon=1.0)
    w = x.reshape(n, -1) - np.outer(y, flat_v)
    np.testing.assert_allclose(w @ flat_v, 0.0, atol=1e-10)  # orthogonal to v
    cov = w.T @ w / n
    want = sigma ** 2 * (np.eye(16) - np.outer(flat_v, flat_v))
    # Monte Carlo: entries have std ~ sigma^2 sqrt(2 / n) ~ 0.03.
    assert np.abs(cov - want).max() < 0.15


# ---------------------------------------------------------------------------
# NADs
# ---------------------------------------------------------------------------

def test_nads_of_a_linear_model_match_the_closed_form():
    """f(x) = W_std / sqrt(d) w.x: G = W_std^2 / d I, exact = finite differences."""
    init_fn, apply_fn, _ = models.fc(depth=0, out_dim=1, W_std=1.5, b_std=0.1)
    key = jax.random.PRNGKey(0)
    exact = an.input_gradients(init_fn, apply_fn, (4, 4, 1), 200, key)
    fd = an.input_gradients(init_fn, apply_fn, (4, 4, 1), 40, key,
                            gradient='finite_difference', fd_scale=100.0)
    np.testing.assert_allclose(fd, exact[:40], rtol=1e-3, atol=1e-4)
    evals, nads = an.nads_from_gradients(exact)
    # tr G / d = E ||g||^2 / d = W_std^2 / d (Monte Carlo over 200 nets: ~2.5%).
    assert evals.mean() == pytest.approx(1.5 ** 2 / 16, rel=0.1)
    np.testing.assert_allclose(nads @ nads.T, np.eye(16), atol=1e-10)
    assert evals.sum() == pytest.approx(np.mean(np.sum(exact ** 2, 1)), rel=1e-10)
    assert np.all(np.diff(evals) <= 1e-12)


def test_fc_nad_spectrum_is_flat_and_cnn_gap_is_anisotropic():
    """FC nets are rotation invariant in distribution at init: G ~ c I.

    With m gradient samples in d dimensions an isotropic G's sample spectrum
    has participation ratio ~ 1 / (1 + d / m) (Marchenko-Pastur); a CNN with
    global average pooling concentrates its gradients on few (low-frequency)
    directions.
    """
    shape, m = (6, 6, 1), 200
    key = jax.random.PRNGKey(3)
    fc = models.fc(depth=2, width=128, out_dim=1)
    cnn = models.cnn(depth=2, width=16, readout='gap', out_dim=1)
    grads_fc = an.input_gradients(fc[0], fc[1], shape, m, key)
    grads_cnn = an.input_gradients(cnn[0], cnn[1], shape, m, key)
    ev_fc, _ = an.nads_from_gradients(grads_fc)
    ev_cnn, _ = an.nads_from_gradients(grads_cnn)
    isotropic = 1 / (1 + 36 / m)
    assert an.participation_ratio(ev_fc) > 0.9 * isotropic
    assert an.participation_ratio(ev_cnn) < 0.5 * isotropic
    assert ev_cnn[0] / ev_cnn.mean() > 3 * ev_fc[0] / ev_fc.mean()
    # The CNN-GAP's gradient energy favours the DC direction over the highest
    # frequency; the FC's is the same for both up to Monte Carlo error.
    dc = an.fourier_direction(6, 6, 0, 0)
    nyq = an.fourier_direction(6, 6, 3, 3)
    for grads, ratio_range in ((grads_fc, (0.6, 1.6)),
                               (grads_cnn, (5.0, np.inf))):
        energy = an.directional_energy(an.gradient_covariance(grads),
                                       np.stack([dc, nyq]))
        assert ratio_range[0] < energy[0] / energy[1] < ratio_range[1]


def test_exact_gradients_at_one_point_single_out_x0_finite_differences_do_not():
    """Euler: <grad f(x0), x0> = f(x0) for a positively homogeneous net, so
    exact gradients at one fixed point make x0 a NAD; the authors' central
    differences with step 100 >> |x0| do not, and their top NAD is DC."""
    shape, key = (6, 6, 1), jax.random.PRNGKey(3)
    init_fn, apply_fn, _ = models.cnn(depth=2, width=16, b_std=None, out_dim=1)
    x0 = an.fixed_point(key, shape).ravel()
    x0 /= np.linalg.norm(x0)
    dc = an.fourier_direction(6, 6, 0, 0).ravel()
    _, exact = an.nads_from_gradients(
        an.input_gradients(init_fn, apply_fn, shape, 200, key))
    _, fd = an.nads_from_gradients(an.input_gradients(
        init_fn, apply_fn, shape, 200, key, gradient='finite_difference',
        fd_scale=100.0))
    assert abs(exact[0] @ x0) > 0.8 and abs(exact[1] @ dc) > 0.8
    assert abs(fd[0] @ dc) > 0.8 and abs(fd[0] @ x0) < 0.3


@pytest.mark.slow
def test_finite_cnn_gap_learns_dc_but_not_high_frequency():
    """The paper's Fig. 1 in miniature: trained by the experiment's SGD loop,
    an FC net is equally good along DC and the highest frequency, a CNN-GAP
    only along DC."""
    from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top
    from ntkexp.experiments.nads import FiniteTrainer, predicted_sign  # pylint: disable=g-import-not-at-top
    train = OmegaConf.create(dict(loss='xent', lr=4.0, schedule='linear',
                                  epochs=20, batch_size=64, momentum=0.0,
                                  clip_norm=None, dtype='float32'))
    shape, n_train, n_test = (6, 6, 1), 256, 512
    rng = np.random.default_rng(0)
    y_train = an.balanced_labels(n_train, rng)
    y_test = an.balanced_labels(n_test, rng)
    noise_train = an.directional_noise(n_train, shape, 1.0, rng)
    noise_test = an.directional_noise(n_test, shape, 1.0, rng)
    accs = {}
    for name, net in (('fc', models.fc(depth=2, width=256, out_dim=2)),
                      ('cnn', models.cnn(depth=2, width=32, out_dim=2))):
        trainer = FiniteTrainer(net[0], net[1], train, shape, n_train,
                                jax.random.PRNGKey(0))
        for i, j in ((0, 0), (3, 3)):
            v = an.fourier_direction(6, 6, i, j)
            params = trainer.fit(an.directional_data(v, y_train, noise_train, 1.0),
                                 y_train, 0)
            x_test = an.directional_data(v, y_test, noise_test, 1.0)
            accs[name, i, j] = np.mean(
                predicted_sign(trainer.predict(params, x_test), 'xent') == y_test)
    assert accs['fc', 0, 0] > 0.8 and accs['fc', 3, 3] > 0.8
    assert abs(accs['fc', 0, 0] - accs['fc', 3, 3]) < 0.1
    assert accs['cnn', 0, 0] > 0.9
    assert accs['cnn', 3, 3] < 0.7


# ---------------------------------------------------------------------------
# Kernel view
# ---------------------------------------------------------------------------

def _householder(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The reflection mapping unit vector a to unit vector b."""
    u = a - b
    return np.eye(len(a)) - 2 * np.outer(u, u) / (u @ u)


def test_fc_kernel_is_rotation_invariant_cnn_kernel_is_not():
    """An orthogonal map sending v1 to v2 maps D(v1) onto D(v2) in distribution;
    the FC kernel (a function of norms and inner products) is unchanged by it,
    so kernel regression on the rotated data gives identical predictions."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        v1 = an.fourier_direction(4, 4, 0, 0)
        v2 = an.fourier_direction(4, 4, 2, 2)
        rot = _householder(v1.ravel(), v2.ravel())
        x, y = an.sample_directional(v1, 24, 1.0, 1.0, rng)
        x_rot = (x.reshape(24, -1) @ rot.T).reshape(x.shape)
        np.testing.assert_allclose(x_rot.reshape(24, -1) @ v2.ravel(), y,
                                   atol=1e-10)
        _, _, k_fc = models.fc(depth=2, out_dim=1)
        _, _, k_cnn = models.cnn(depth=1, width=8, readout='gap', out_dim=1)
        for kernel_fn, invariant in ((k_fc, True), (k_cnn, False)):
            kernel_fn = jax.jit(kernel_fn, static_argnames='get')
            a = np.asarray(kernel_fn(x, None, 'ntk'))
            b = np.asarray(kernel_fn(x_rot, None, 'ntk'))
            if invariant:
                # Equal up to rounding (arccos is ill-conditioned near the diagonal).
                np.testing.assert_allclose(a, b, rtol=1e-6)
                pa = solve.predict_inf(a[:16, :16], a[16:, :16], y[:16, None], 1e-4)
                pb = solve.predict_inf(b[:16, :16], b[16:, :16], y[:16, None], 1e-4)
                np.testing.assert_allclose(pa, pb, rtol=1e-6, atol=1e-9)
            else:
                assert np.abs(a - b).max() > 0.05 * np.abs(a).max()


def test_kernel_accuracy_fc_flat_cnn_gap_selective():
    """NTK regression accuracy per direction (the experiment's kernel view):
    FC the same for all directions up to sampling noise; CNN-GAP high at DC,
    near chance at the highest frequency."""
    height = width = 4
    n_train, n_test = 48, 200
    rng = np.random.default_rng(0)
    y_train = an.balanced_labels(n_train, rng)
    y_test = an.balanced_labels(n_test, rng)
    noise = an.directional_noise(n_train + n_test, (4, 4, 1), 1.0, rng)
    labels = np.concatenate([y_train, y_test])
    directions = an.fourier_frequencies(height, width, 1)
    assert len(directions) == 10  # (16 + 4) / 2 directions on 4x4
    accs = {}
    with jax.enable_x64(True):
        for name, (_, _, kernel_fn) in (
                ('fc', models.fc(depth=2, out_dim=1)),
                ('cnn', models.cnn(depth=1, width=8, readout='gap', out_dim=1))):
            kernel_fn = jax.jit(kernel_fn, static_argnames='get')
            for i, j in directions:
                v = an.fourier_direction(height, width, i, j)
                x = an.directional_data(v, labels, noise, epsilon=0.5)
                k = np.asarray(kernel_fn(x, None, 'ntk'))
                pred = solve.predict_inf(k[:n_train, :n_train], k[n_train:, :n_train],
                                         y_train[:, None], 1e-4)
                accs[name, i, j] = np.mean(np.sign(pred[:, 0]) == y_test)
    fc = np.array([accs['fc', i, j] for i, j in directions])
    # Binomial std at n_test = 200 and p ~ 0.93 is ~0.02.
    assert fc.max() - fc.min() < 0.15
    assert 0.6 < fc.mean() < 1.0
    assert accs['cnn', 0, 0] > 0.9
    assert accs['cnn', 2, 2] < 0.7
    assert accs['cnn', 0, 0] - accs['cnn', 2, 2] > 0.3


# ---------------------------------------------------------------------------
# Configs and the end-to-end run
# ---------------------------------------------------------------------------

def test_paper_configs_compose_and_validate():
    cfg = compose(['experiment=ortiz2020_accuracy_maps', 'model=cnn'])
    exp = cfg.experiment
    assert 'dataset' not in cfg
    assert list(exp.image_size) == [32, 32] and exp.channels == 1
    assert (exp.epsilon, exp.sigma, exp.n_train, exp.n_test) == (0.5, 3.0, 10000, 10000)
    assert exp.freq_stride == 1
    assert (exp.train.lr, exp.train.clip_norm, exp.train.batch_size,
            exp.train.epochs) == (0.5, 0.5, 128, 20)
    assert cfg.model.parameterization == 'standard'
    runner.validate(cfg)
    cfg = compose(['experiment=ortiz2020_nads', 'model=myrtle'])
    nad = cfg.experiment.nad
    assert (nad.eval_point, nad.gradient, nad.fd_scale, nad.n_networks) == (
        'fixed', 'finite_difference', 100.0, 10000)
    assert list(cfg.experiment.accuracy) == []
    runner.validate(cfg)


@pytest.mark.parametrize('override,match', [
    ('experiment.fourier_part=complex', 'fourier_part'),
    ('experiment.accuracy=[finite,exact]', 'accuracy'),
    ('experiment.nad.eval_point=mean', 'eval_point'),
    ('experiment.image_size=[1,8]', 'image_size'),
    ('experiment.train.loss=hinge', 'train.loss'),
])
def test_bad_values_fail_with_one_line(override, match):
    with pytest.raises(runner.ConfigError, match=match):
        runner.validate(compose(['experiment=nads', 'model=fc', override]))


def test_imaginary_part_at_dc_and_too_small_images_fail():
    with pytest.raises(runner.ConfigError, match='imaginary part'):
        runner.validate(compose(['experiment=nads', 'model=fc',
                                 'experiment.fourier_part=imag',
                                 'experiment.frequencies=[[0,0]]']))
    with pytest.raises(runner.ConfigError, match='image_size'):
        runner.validate(compose(['experiment=nads', 'model=myrtle',
                                 'experiment.image_size=[2,2]']))


def test_run_job_end_to_end(tmp_path):
    cfg = compose(['experiment=nads', 'model=fc', 'model.width=64',
                   f'paths.root={tmp_path}', 'kernel.progress=false',
                   'experiment.image_size=[4,4]', 'experiment.freq_stride=2',
                   'experiment.accuracy=[finite,kernel]',
                   'experiment.kernels=[nngp,ntk]',
                   'experiment.n_train=64', 'experiment.n_test=64',
                   'experiment.train.epochs=5', 'experiment.nad.n_networks=16',
                   'experiment.nad.n_images=3'])
    run_dir = tmp_path / 'run'
    frame = runner.run_job(cfg, run_dir)
    status = json.loads((run_dir / 'status.json').read_text())
    assert status['status'] == 'ok'
    directions = an.fourier_frequencies(4, 4, 2)
    assert directions == [(0, 0), (0, 2), (2, 0), (2, 2)]
    acc = frame[frame['metric'] == 'accuracy']
    assert len(acc) == 3 * len(directions)  # finite, nngp, ntk
    assert set(acc['view']) == {'finite', 'nngp', 'ntk'}
    assert acc['value'].between(0, 1).all()
    assert set(frame['dataset']) == {'directional'}
    assert (frame['image_h'] == 4).all() and (frame['n_train'] == 64).all()
    # Each row says the precision its value was computed in: the kernels the
    # run's (float64), the networks' train.dtype and the NADs' nad.dtype (float32).
    precision = acc.set_index('view')['precision']
    assert set(precision['finite']) == {'float32'} and set(precision['ntk']) == {'float64'}
    assert set(frame.loc[frame['metric'] == 'nad_eigenvalue', 'precision']) == {'float32'}
    evals = frame[frame['metric'] == 'nad_eigenvalue'].sort_values('nad_index')
    assert len(evals) == 16 and np.all(np.diff(evals['value']) <= 0)
    assert (frame['metric'] == 'nad_pixel').sum() == 3 * 16
    assert (frame['metric'] == 'nad_energy').sum() == 10  # (16 + 4) / 2
    saved = np.load(run_dir / 'nads.npz')
    np.testing.assert_allclose(saved['eigenvalues'], evals['value'], rtol=1e-9)
    assert saved['nads'].shape == (16, 4, 4, 1)
    summary = frame.attrs['summary']
    assert {'freq_i', 'freq_j', 'finite', 'ntk', 'nngp', 'nad_energy'} <= set(summary)

    from ntkexp.plots import nads as nads_plots  # pylint: disable=g-import-not-at-top
    paths = nads_plots.plot(frame, tmp_path / 'figs')
    names = {p.name for p in paths}
    assert {'nads_accuracy_maps.png', 'nads_images.pdf',
            'nads_spectrum.png'} <= names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_energy_only_rows_are_not_drawn_as_accuracy_maps(tmp_path):
    """NAD runs without accuracy (experiment.accuracy=[]) have only
    nad_energy rows: the figure is nads_energy_maps, not a file named and
    titled as Ortiz-Jimenez et al.'s accuracy maps."""
    from ntkexp.plots import nads as nads_plots  # pylint: disable=g-import-not-at-top
    rows = [dict(metric='nad_energy', model='cnn', freq_i=i, freq_j=j,
                 value=float(1 + i + j), image_h=4, image_w=4)
            for i in range(3) for j in range(3)]
    frame = pd.DataFrame(rows)
    frame['label'] = 'cnn'
    paths = nads_plots.plot_accuracy_maps(frame, tmp_path)
    assert sorted(p.name for p in paths) == ['nads_energy_maps.pdf',
                                             'nads_energy_maps.png']
    acc = frame.assign(metric='accuracy', view='finite', value=0.9)
    paths = nads_plots.plot_accuracy_maps(pd.concat([frame, acc]), tmp_path)
    assert 'nads_accuracy_maps.png' in {p.name for p in paths}
