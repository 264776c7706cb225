"""Data augmentation by ensembling kernel predictors (Lee et al. 2020).

The transforms against hand-made images; the experiment's ensemble rows
against predictors built here from neural-tangents' ``kernel_fn`` on the same
transformed images (the flip pool's index selection must equal recomputing);
and the invariant that flips change nothing when every image is symmetric.
"""

from __future__ import annotations

import dataclasses
import math

import hydra
import jax
import numpy as np
import pytest
from hydra.utils import instantiate

import ntkexp  # noqa: F401  (neural-tangents on current JAX)

from ntkexp import augment
from ntkexp import cli
from ntkexp import runner
from ntkexp import solve

DIAG_REG = 1e-3


def _images(n=3, h=4, w=5, c=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, h, w, c))


def test_flip_mirrors_the_width_axis():
    x = _images()
    flipped = augment.flip_lr(x)
    assert flipped[1, 2, 0, 1] == x[1, 2, 4, 1]
    np.testing.assert_array_equal(augment.flip_lr(flipped), x)


def test_shift_moves_pixels_and_zeroes_the_border():
    x = _images(n=3)
    shifts = np.array([[1, 0], [0, -2], [0, 0]])
    out = augment.shift(x, shifts)
    # Image 0 moved down one row: row 0 is empty, row r is the old row r - 1.
    np.testing.assert_array_equal(out[0, 0], 0.0)
    np.testing.assert_array_equal(out[0, 1:], x[0, :-1])
    # Image 1 moved two columns left: the last two columns are empty.
    np.testing.assert_array_equal(out[1, :, :-2], x[1, :, 2:])
    np.testing.assert_array_equal(out[1, :, -2:], 0.0)
    np.testing.assert_array_equal(out[2], x[2])
    # Shifting back restores the pixels that stayed inside.
    back = augment.shift(out, -shifts)
    np.testing.assert_array_equal(back[0, :-1], x[0, :-1])
    np.testing.assert_array_equal(back[1, :, 2:], x[1, :, 2:])


def test_draws_depend_on_seed_and_member_only():
    aug = augment.Augmentation(members=4, flip=True, crop=2, seed=3)
    a = augment.draw(aug, 5000, member=1)
    b = augment.draw(augment.Augmentation(members=9, flip=True, crop=2, seed=3),
                     5000, member=1)
    np.testing.assert_array_equal(a.flips, b.flips)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    other = augment.draw(aug, 5000, member=2)
    assert (a.flips != other.flips).any()
    # Fair coin: 5000 draws within 5 standard deviations (35) of 2500.
    assert abs(int(a.flips.sum()) - 2500) < 5 * math.sqrt(5000 / 4)
    assert set(np.unique(a.shifts).tolist()) == {-2, -1, 0, 1, 2}
    none = augment.draw(augment.Augmentation(members=1, flip=False, crop=1), 50, 0)
    assert not none.flips.any()


def test_flip_members_are_rows_of_the_pool():
    x = _images(n=6)
    aug = augment.Augmentation(members=2, flip=True)
    transforms = augment.draw(aug, len(x), member=0)
    assert 0 < transforms.flips.sum() < len(x)
    np.testing.assert_array_equal(
        augment.apply(x, transforms),
        augment.pool(x)[augment.pool_indices(transforms)])


@pytest.mark.parametrize('options, message', [
    ({'member': 2}, 'unknown keys'),
    ({'members': -1}, 'whole number'),
    ({'members': 2.5}, 'whole number'),
    ({'crop': True}, 'whole number'),
    ({'members': 2, 'flip': False}, 'no transform'),
    ({'members': 2, 'crop': 2, 'union': True}, 'flips alone'),
])
def test_bad_options_get_one_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        augment.from_config(options)


def test_off_by_default_and_label():
    assert not augment.from_config(None).enabled
    assert augment.from_config({'members': 2, 'crop': 4}).label == 'flip+crop4'
    with pytest.raises(ValueError, match='dataset.flatten=false'):
        augment.check_images(np.zeros((3, 64)))


def _compose(tmp_path, *overrides):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR),
                                     version_base='1.3'):
        return hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false',
            'dataset.n_train=40', 'dataset.n_test=30',
            f'experiment.diag_reg={DIAG_REG}', *overrides])


def _reference(cfg, x_train, x_test, data):
    """Ensemble and union predictions from neural-tangents' kernel_fn."""
    aug = augment.from_config(cfg.experiment.augment)
    y = np.asarray(data.y_train, np.float64)
    _, _, kernel_fn = instantiate(cfg.model, out_dim=y.shape[1])
    members, union = [], None
    with jax.enable_x64(True):
        for m in range(aug.members):
            xm = augment.apply(x_train, augment.draw(aug, len(x_train), m))
            members.append(solve.predict_inf(
                np.asarray(kernel_fn(xm, None, 'ntk')),
                np.asarray(kernel_fn(x_test, xm, 'ntk')), y, DIAG_REG))
        if aug.union:
            xp = augment.pool(x_train)
            union = solve.predict_inf(
                np.asarray(kernel_fn(xp, None, 'ntk')),
                np.asarray(kernel_fn(x_test, xp, 'ntk')),
                np.concatenate([y, y]), DIAG_REG)
    return members, union


@pytest.mark.parametrize('transforms', [
    ['experiment.augment.union=true'],                     # flip pool
    ['experiment.augment.flip=false', 'experiment.augment.crop=1'],   # per member
])
def test_ensemble_rows_equal_predictors_built_from_kernel_fn(tmp_path, transforms):
    cfg = _compose(tmp_path, 'experiment.augment.members=3', 'experiment.kernels=[ntk]',
                   *transforms)
    frame = runner.run_job(cfg, tmp_path / 'run')
    data = instantiate(cfg.dataset)
    x_train = np.asarray(data.x_train, np.float64)
    x_test = np.asarray(data.x_test, np.float64)
    members, union = _reference(cfg, x_train, x_test, data)
    rows = frame[frame.metric == 'augment_mse'].sort_values('members')
    assert rows['members'].tolist() == [1, 2, 3]
    for k, value in zip(rows['members'], rows['value']):
        want = np.mean((np.mean(members[:int(k)], axis=0) - data.y_test) ** 2)
        np.testing.assert_allclose(value, want, rtol=1e-9)
    acc = frame[frame.metric == 'augment_accuracy'].sort_values('members')
    np.testing.assert_allclose(
        acc['value'].iloc[-1], solve.accuracy(np.mean(members, axis=0),
                                              data.labels_test))
    union_rows = frame[frame.metric == 'augment_union_mse']
    if union is None:
        assert union_rows.empty
    else:
        np.testing.assert_allclose(union_rows['value'].item(),
                                   np.mean((union - data.y_test) ** 2), rtol=1e-9)
    # The plain rows are unchanged by the pool (its first block is the kernel).
    plain = _compose(tmp_path, 'experiment.kernels=[ntk]')
    plain_frame = runner.run_job(plain, tmp_path / 'plain')
    plain_mse = plain_frame[plain_frame.metric == 'mse']['value'].item()
    np.testing.assert_allclose(frame[frame.metric == 'mse']['value'].item(),
                               plain_mse, rtol=1e-9)
    # ... and the transforms did change the training set.
    assert abs(rows['value'].iloc[0] - plain_mse) > 1e-6 * plain_mse


def test_flips_change_nothing_on_symmetric_images(tmp_path, monkeypatch):
    """Images equal to their mirror image: every member is the plain predictor."""
    from ntkexp.experiments import kernel_regression

    real = kernel_regression.instantiate

    def symmetric(config, *args, **kwargs):
        out = real(config, *args, **kwargs)
        if not hasattr(out, 'x_train'):
            return out
        return dataclasses.replace(out, **{
            split: (getattr(out, split) + augment.flip_lr(getattr(out, split))) / 2
            for split in ('x_train', 'x_test')})

    monkeypatch.setattr(kernel_regression, 'instantiate', symmetric)
    cfg = _compose(tmp_path, 'experiment.augment.members=2', 'experiment.kernels=[nngp]')
    frame = runner.run_job(cfg, tmp_path / 'run')
    plain = frame[frame.metric == 'mse']['value'].item()
    ensemble = frame[frame.metric == 'augment_mse']['value'].to_numpy()
    np.testing.assert_allclose(ensemble, plain, rtol=1e-9)


def test_flip_pool_too_large_for_memory_names_the_doubling(tmp_path, monkeypatch):
    from ntkexp import host_memory
    monkeypatch.setattr(host_memory, 'available_bytes', lambda: 10**5)
    cfg = _compose(tmp_path, 'experiment.augment.members=2')
    with pytest.raises(host_memory.HostMemoryError,
                       match=r'twice dataset.n_train=40.*members=0'):
        runner.run_job(cfg, tmp_path / 'run')
