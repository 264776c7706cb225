"""Huang et al. 2020 with finite networks: the depth configs and their figure.

The configs run end to end at a tiny size (FC and the ResNet with ``alpha =
L^-1/2`` on two digit classes); the ``depth_accuracy`` figure's table is
checked against hand-made rows (best and final accuracy over seeds, the
kernels' accuracy and the NTK drift per depth).
"""

from __future__ import annotations

import itertools

import hydra
import numpy as np
import pandas as pd
import pytest

import ntkexp  # noqa: F401  (neural-tangents on current JAX)

from ntkexp import cli
from ntkexp import runner
from ntkexp.plots import finite_width as fw_plots


def _compose(tmp_path, config, *overrides):
    with hydra.initialize_config_dir(config_dir=str(cli.CONF_DIR), version_base='1.3'):
        return hydra.compose('config', overrides=[
            f'paths.root={tmp_path}', 'kernel.progress=false', f'experiment={config}',
            'dataset=digits', 'dataset.classes=[4,9]', 'dataset.n_train=32',
            'dataset.n_test=40', 'dataset.flatten=true', 'dataset.standardize=per_channel',
            'dataset.targets=onehot_centered', 'experiment.widths=[32]',
            'experiment.steps=20', 'experiment.eval_every=10', 'experiment.probe_size=4',
            *overrides])


@pytest.mark.parametrize('config, model', [('huang2020_finite', 'fc'),
                                           ('huang2020_finite_resnet', 'resnet')])
def test_huang2020_finite_configs_run(tmp_path, config, model):
    cfg = _compose(tmp_path, config, 'model.depth=4')
    assert cfg.model.depth == 4 and cfg.dataset.classes == [4, 9]
    if model == 'resnet':
        assert cfg.model.alpha_gamma == 0.5
    frame = runner.run_job(cfg, tmp_path / 'run')
    assert set(frame['model']) == {model}
    last = frame[(frame.metric == 'test_accuracy') & (frame.step == 20)]
    assert set(last['predictor']) == {'net', 'net_centered', 'ntk', 'ntk_mean'}
    assert set(last['seed']) == {0, 1}
    assert frame[frame.metric == 'kernel_test_accuracy']['value'].between(0.5, 1).all()
    drift = frame[frame.metric == 'ntk_drift']
    assert (drift[drift.step == 0]['value'] == 0).all()
    assert (drift[drift.step == 20]['value'] > 0).all()
    if model == 'resnet':
        # alpha = L^(-1/2) = 0.5 at depth 4 by alpha_gamma; model.alpha (0.5
        # too) is not what set it, so the rows leave alpha empty.
        assert set(frame['alpha_gamma']) == {0.5} and frame['alpha'].isna().all()


def test_legend_names_the_resnets_alpha_by_its_depth_exponent():
    """FC beside a ResNet with alpha = L^-1/2: the lines are told apart by
    model and alpha_gamma; normalize (False, and absent for FC) says nothing."""
    from ntkexp.plots import rows as plot_rows  # pylint: disable=g-import-not-at-top
    from ntkexp.plots.finite_width import common  # pylint: disable=g-import-not-at-top
    frame = pd.DataFrame([
        dict(model='fc', depth=4, alpha=None, alpha_gamma=None, normalize=None),
        dict(model='resnet', depth=4, alpha=None, alpha_gamma=0.5, normalize=False)])
    assert plot_rows.line_columns(frame) == ['model', 'alpha_gamma']
    assert common.model_label(frame, ('resnet', 0.5)) == r'ResNet, $\alpha = L^{-0.5}$'
    assert common.model_label(frame, ('fc', np.nan)) == 'FC'
    frame.loc[0, 'normalize'] = True  # a normalised FC-like model: it tells lines apart
    assert plot_rows.line_columns(frame) == ['model', 'alpha_gamma', 'normalize']


def test_rows_carry_the_resnets_alpha_or_its_depth_exponent(tmp_path):
    columns = runner.base_columns(_compose(
        tmp_path, 'huang2020_finite_resnet', 'model.depth=16', 'model.alpha=0.3'))
    assert columns['alpha_gamma'] == 0.5 and columns['alpha'] is None
    columns = runner.base_columns(_compose(
        tmp_path, 'huang2020_finite_resnet', 'model.alpha_gamma=null', 'model.alpha=0.3'))
    assert columns['alpha'] == 0.3 and columns['alpha_gamma'] is None


def _rows():
    """Two models at depths 1, 4, 16: accuracies that rise with the step."""
    rows = []
    for model, depth, seed, step in itertools.product(
            ('fc', 'resnet'), (1, 4, 16), (0, 1), (0, 10)):
        base = dict(experiment='finite_width', model=model, depth=depth, width=64,
                    seed=seed, run_dir=f'{model}{depth}', dataset='mnist')
        value = 0.5 + 0.01 * depth * (model == 'resnet') + 0.1 * step / 10 + 0.02 * seed
        rows.append(dict(base, metric='test_accuracy', predictor='net', step=step,
                         value=value))
        rows.append(dict(base, metric='test_accuracy', predictor='ntk', step=step,
                         value=value + 0.05))
        rows.append(dict(base, metric='ntk_drift', step=step,
                         value=0.0 if step == 0 else 0.01 * depth * (1 + seed)))
        if seed == 0 and step == 0:
            for kernel in ('nngp', 'ntk'):
                rows.append(dict(base, metric='kernel_test_accuracy', kernel=kernel,
                                 value=0.9 - 0.001 * depth, parameterization='ntk'))
    return pd.DataFrame(rows)


def test_depth_accuracy_figure_table(tmp_path):
    paths = fw_plots.plot_depth_accuracy(_rows(), tmp_path, 'finite_width')
    assert [p.name for p in paths] == ['finite_width_depth_accuracy.png',
                                       'finite_width_depth_accuracy.pdf',
                                       'finite_width_depth_accuracy.csv']
    table = pd.read_csv(paths[-1]).set_index(['model', 'predictor', 'depth'])
    # best = final = the step-10 value, mean over seeds 0, 1 (+0.01).
    np.testing.assert_allclose(table.loc[('resnet', 'net', 16), ['best', 'final']],
                               [0.5 + 0.16 + 0.1 + 0.01] * 2)
    assert table.loc[('fc', 'ntk', 4), 'best'] == pytest.approx(0.66)
    assert table.loc[('fc', 'net', 1), 'seeds'] == 2
    assert table.loc[('fc', 'ntk_kernel', 16), 'final'] == pytest.approx(0.884)
    # The drift at the last step, mean over seeds: 0.01 depth (1 + 2) / 2.
    assert table.loc[('resnet', 'ntk_drift', 4), 'final'] == pytest.approx(0.06)


def test_depth_accuracy_figure_needs_three_depths_at_one_width(tmp_path):
    rows = _rows()
    assert fw_plots.plot_depth_accuracy(rows[rows.depth < 16], tmp_path, 'x') == []
    wider = rows.assign(width=np.where(rows.depth == 4, 128, 64))
    assert fw_plots.plot_depth_accuracy(wider, tmp_path, 'x') == []
