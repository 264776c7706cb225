"""The depth degeneracy of Huang et al. 2020 and the kernel-geometry rows.

Huang et al. 2020 ("Why Do Deep Residual Networks Generalize Better than Deep
Feedforward Networks? -- A Neural Tangent Kernel Perspective") show that the
NTK of a deep fully connected network degenerates as the depth grows, while a
ResNet's with branch scale ``alpha = L^(-gamma)`` does not. Checked here:

* :func:`ntkexp.spectrum.cosine_offdiagonal` on kernels of known cosines;
* the bias-free FC ReLU NTK's cosines equal the arc-cosine recursion at every
  depth and tend to 1/4 for every input pair (their spread falls to zero);
* a ResNet with ``alpha = 0`` has the input's cosines at any depth;
* ``experiment.kernel_stats=true`` rows equal these functions of the kernels.
"""

from __future__ import annotations

import hydra
import jax
import numpy as np
import pytest
from hydra.utils import instantiate

import ntkexp  # noqa: F401  (neural-tangents on current JAX)

from ntkexp import cli
from ntkexp import models
from ntkexp import runner
from ntkexp import spectrum
from arccos import relu_kernels


def _unit_pairs(n=6, d=5, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _input_cosines(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_cosine_offdiagonal_of_known_kernels():
    # a 11^T + b I: every cosine is a / (a + b), no spread; scaling rows and
    # columns by positive weights (K -> D K D) changes no cosine.
    n, a, b = 7, 2.0, 3.0
    kernel = a * np.ones((n, n)) + b * np.eye(n)
    weights = np.diag(np.arange(1.0, n + 1))
    for k in (kernel, weights @ kernel @ weights):
        mean, std = spectrum.cosine_offdiagonal(k)
        assert mean == pytest.approx(a / (a + b), rel=1e-14)
        assert std == pytest.approx(0.0, abs=1e-14)
    # A Gram matrix: the cosines of the vectors, pair by pair.
    x = np.random.default_rng(1).normal(size=(5, 3))
    cos = _input_cosines(x)
    pairs = [cos[i, j] for i in range(5) for j in range(5) if i != j]
    mean, std = spectrum.cosine_offdiagonal(x @ x.T * 4.0)
    assert mean == pytest.approx(np.mean(pairs), rel=1e-12)
    assert std == pytest.approx(np.std(pairs), rel=1e-12)


@pytest.mark.parametrize('depth', [1, 8, 64, 512])
def test_fc_relu_ntk_cosines_follow_the_recursion_to_one_quarter(depth):
    x = _unit_pairs()
    _, _, kernel_fn = models.fc(depth=depth, b_std=None)
    with jax.enable_x64(True):
        ntk = np.asarray(kernel_fn(x, None, 'ntk'), np.float64)
    scale = np.sqrt(np.diag(ntk))
    got = ntk / np.outer(scale, scale)
    off_diagonal = ~np.eye(len(x), dtype=bool)  # the diagonal is 1 by definition
    _, want = relu_kernels(x, None, depth, 2 ** 0.5, None)
    scale = np.sqrt(np.diag(want))
    want = (want / np.outer(scale, scale))[off_diagonal]
    # The arc-cosine step loses ~1e-9 near cosine 1 in float64 (both sides).
    np.testing.assert_allclose(got[off_diagonal], want, rtol=1e-7)
    off = want
    if depth == 512:  # degenerate: every pair near 1/4, whatever its angle
        assert np.all(np.abs(off - 0.25) < 0.02)
        assert np.ptp(_input_cosines(x)[~np.eye(len(x), dtype=bool)]) > 0.8


def test_fc_cosine_spread_falls_with_depth():
    x = _unit_pairs(n=12, d=8, seed=3)
    spreads = []
    for depth in (1, 4, 16, 64, 256):
        _, _, kernel_fn = models.fc(depth=depth, b_std=None)
        with jax.enable_x64(True):
            spreads.append(spectrum.cosine_offdiagonal(
                np.asarray(kernel_fn(x, None, 'ntk')))[1])
    assert all(later < earlier for earlier, later in zip(spreads, spreads[1:]))
    assert spreads[-1] < spreads[0] / 50


def test_resnet_without_branches_keeps_the_input_cosines():
    # alpha = 0: f = v^T V_0 x, a linear net whatever the depth; its NTK is a
    # multiple of x . x', so its cosines are the inputs'.
    x = np.random.default_rng(2).normal(size=(6, 4))
    for depth in (1, 16):
        _, _, kernel_fn = models.resnet(depth=depth, alpha=0.0)
        with jax.enable_x64(True):
            ntk = np.asarray(kernel_fn(x, None, 'ntk'), np.float64)
        scale = np.sqrt(np.diag(ntk))
        np.testing.assert_allclose(ntk / np.outer(scale, scale), _input_cosines(x),
                                   rtol=1e-12, atol=1e-12)


def test_kernel_stats_rows_equal_the_kernels_geometry(tmp_path):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                     version_base='1.3'):
        cfg = hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false',
            'dataset.n_train=40', 'dataset.n_test=10', 'dataset.classes=[3,8]',
            'experiment.kernel_stats=true', 'precision=float64'])
    frame = runner.run_job(cfg, tmp_path / 'run')
    data = instantiate(cfg.dataset)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=data.y_train.shape[1])
    assert data.n_classes == 2 and data.y_train.shape == (40, 2)
    with jax.enable_x64(True):
        x = np.asarray(data.x_train, np.float64)
        kernels = kernel_fn(x, None, ('nngp', 'ntk'))
    for kernel in ('nngp', 'ntk'):
        k = np.asarray(getattr(kernels, kernel), np.float64)
        rows = frame[frame.kernel == kernel].set_index('metric')['value']
        mean, std = spectrum.cosine_offdiagonal(k)
        assert rows['kernel_cos_mean'] == pytest.approx(mean, rel=1e-7)
        assert rows['kernel_cos_std'] == pytest.approx(std, rel=1e-7)
        assert rows['kernel_alignment'] == pytest.approx(
            spectrum.centered_alignment(k, data.y_train), rel=1e-7)
        assert 0.0 < rows['kernel_alignment'] < 1.0
    accuracy = frame[frame.metric == 'accuracy']['value']
    assert len(accuracy) == 2 and (accuracy > 0.5).all()  # 3 vs 8, two classes


def test_geometry_in_row_chunks_equals_the_whole_matrix(monkeypatch):
    """Cosines and centred alignment over chunks of rows (the memory-lean path
    for large kernels) equal the whole-matrix formulas."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(23, 4))
    k, y = x @ x.T + 0.3, rng.normal(size=(23, 2))
    off = ~np.eye(23, dtype=bool)
    cos = (k / np.sqrt(np.outer(np.diag(k), np.diag(k))))[off]
    h = np.eye(23) - 1 / 23
    kc, yc = h @ k @ h, h @ y
    alignment = np.sum(yc * (kc @ yc)) / (np.linalg.norm(kc) * np.linalg.norm(yc.T @ yc))
    monkeypatch.setattr(spectrum, 'ROW_CHUNK', 7)  # 4 chunks, the last of 2 rows
    mean, std = spectrum.cosine_offdiagonal(k)
    assert mean == pytest.approx(cos.mean(), rel=1e-13)
    assert std == pytest.approx(cos.std(), rel=1e-12)
    assert spectrum.centered_alignment(k, y) == pytest.approx(alignment, rel=1e-12)
