"""Kernel regression against a size: the number of training points (Arora
et al. 2020, Fig. 1; ``n_train``), the depth (Huang et al. 2020;
``depth``) and the data-augmentation ensemble (Lee et al. 2020;
``augment``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots.kernel_regression.common import (
    AXIS_LABELS, KERNEL_STATS, METRIC_LABELS, colour_key, draw_line, facet_rows, facet_values,
    finish_grid, line_colors, matching_rows, mean_std, metrics_in, ordered_models, panels,
    place_legend, rows_at_inf, save_figure, series_of, set_log_x, swept, value_label,
    with_title)
from ntkexp.plots.kernel_regression.selection import best_over_diag_reg


def plot_n_train(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy against training-set size (Arora et al. 2020, Fig. 1).

    Only lines run at two or more sizes are drawn (a table may also hold a
    dataset run at one size, e.g. Lee 2020's digits next to CIFAR-10).
    """
    rows = swept(rows_at_inf(frame), 'n_train')
    metrics = metrics_in(rows, ('accuracy',)) or metrics_in(rows, ('mse',))
    if not metrics:
        return []
    metric = metrics[0]
    data = rows[rows['metric'] == metric]
    regs = sorted(data['diag_reg'].dropna().unique()) if 'diag_reg' in data else [None]
    if len(regs) > 4:  # four evenly spaced panels
        regs = [regs[i] for i in np.linspace(0, len(regs) - 1, 4).round().astype(int)]
    colors = line_colors(data, 'n_train', ('diag_reg',))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(regs), figsize=(4.6 * len(regs), 3.6),
                             squeeze=False, sharey=True,
                             layout='constrained')
    for ax, reg in zip(axes[0], regs):
        panel = data if reg is None else data[data['diag_reg'] == reg]
        lines = list(series_of(panel, 'n_train', ('diag_reg',), label_rows=data))
        order = ({m: k for k, m in enumerate(ordered_models(panel['model']))}
                 if 'model' in panel.columns else {})
        lines.sort(key=lambda item: order.get(str(item[0].get('model')), 0))
        for settings, label, group in lines:
            draw_line(ax, mean_std(group, 'n_train'), label, settings.get('kernel'),
                  color=colors.get(colour_key(settings)))
        set_log_x(ax, panel['n_train'].to_numpy(float), force=True)
        ax.set_xlabel(AXIS_LABELS['n_train'])
        if reg is not None and len(regs) > 1:
            ax.set_title(rf'$\varepsilon$ = {reg:g}', fontsize=9)
        ax.grid(alpha=0.3, which='both')
    axes[0][0].set_ylabel(METRIC_LABELS.get(metric, metric))
    place_legend(fig, axes[0][0])
    fig.suptitle(with_title('Small-data regime (Arora et al. 2020)', rows),
                 fontsize=9)
    return save_figure(fig, out_dir, 'n_train')


def plot_depth(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy and kernel geometry against depth (Huang et al. 2020).

    Panels: the best test accuracy over ``diag_reg`` (seeds averaged at each
    ``diag_reg`` first; with ``dataset.n_valid``, the test accuracy at the
    ``diag_reg`` best on validation), then each :data:`KERNEL_STATS` metric present; one
    row per dataset. Lines: model (and ``alpha_gamma``, the ResNet's
    ``alpha = L^(-gamma)``) in colour, NNGP dashed and NTK solid. The mean
    cosine panel marks 1/4, the limit of the bias-free ReLU FC NTK
    (:mod:`tests.test_depth_degeneracy`). Also writes ``depth.csv``.
    """
    if 'depth' not in frame.columns:
        return []
    rows = rows_at_inf(frame)
    rows = rows.assign(depth=pd.to_numeric(rows['depth'], errors='coerce'))
    valid = rows[rows['metric'] == 'val_accuracy']
    rows = rows[rows['metric'].isin(('accuracy',) + KERNEL_STATS)]
    # A line is a sweep when it has two depths; diag_reg does not split lines.
    rows = swept(rows[rows['depth'].notna()], 'depth', ignore=('diag_reg',))
    metrics = metrics_in(rows, ('accuracy',) + KERNEL_STATS)
    if not metrics:
        return []
    exclude = ('dataset', 'diag_reg')
    datasets = facet_values(rows, 'dataset')
    colors = line_colors(rows, 'depth', exclude)
    fig, axes = panels(len(datasets), len(metrics), 4.0, 3.3)
    table = []
    for i, dataset in enumerate(datasets):
        part = facet_rows(rows, 'dataset', dataset)
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            data = part[part['metric'] == metric]
            for settings, label, group in series_of(data, 'depth', exclude,
                                                  label_rows=rows):
                picked_on = (matching_rows(facet_rows(valid, 'dataset', dataset), settings)
                             if metric == 'accuracy' and not valid.empty else None)
                stats = best_over_diag_reg(group, 'depth', picked_on)
                draw_line(ax, stats, label, settings.get('kernel'),
                      color=colors.get(colour_key(settings)))
                for depth, stat in stats.iterrows():
                    table.append(dict(settings, dataset=dataset, metric=metric,
                                      depth=depth, mean=stat['mean'],
                                      std=stat['std'], count=stat['count'],
                                      diag_reg=stat['diag_reg'],
                                      **({'selected_on': stat['selected_on']}
                                         if 'selected_on' in stat else {})))
            if metric == 'kernel_cos_mean' and 'fc' in set(data.get('model', [])):
                ax.axhline(0.25, color='0.4', ls=':', lw=1,
                           label='1/4: deep FC ReLU limit')
            set_log_x(ax, data['depth'].to_numpy(float), force=True)
            values = data['value'].to_numpy(float)
            values = values[np.isfinite(values) & (values > 0)]
            if (metric == 'kernel_cos_std' and values.size
                    and values.max() / values.min() > 10):
                ax.set_yscale('log')
            ax.set_xlabel(AXIS_LABELS['depth'], fontsize=8)
            ylabel = METRIC_LABELS.get(metric, metric)
            if metric == 'accuracy':
                ylabel = f'best {ylabel} over ' + r'$\varepsilon$'
            ax.set_ylabel(ylabel, fontsize=8)
            if dataset is not None:
                ax.set_title(value_label('dataset', dataset), fontsize=9)
            ax.grid(alpha=0.3, which='both')
    return finish_grid(fig, axes, with_title('Depth: accuracy and kernel '
                                               'degeneracy (Huang et al. 2020)', rows),
                        out_dir, 'depth', table)


def plot_augment(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy of the augmentation ensemble against its size (Lee et al. 2020).

    One panel per dataset (row) and augmentation (column, e.g. ``flip``,
    ``flip+crop4``). A line per model (colour) and kernel (NNGP dashed, NTK
    solid): the best test accuracy over ``diag_reg`` of the mean prediction
    of the first k members, starting at k = 0 with the plain predictor of the
    same run; a star at the right, one predictor trained on all ``2N``
    images ``[x; flip(x)]`` (``experiment.augment.union``). Also writes
    ``augment.csv`` (``members`` 0 = plain, -1 = that union).
    """
    rows = rows_at_inf(frame)
    if 'members' not in rows.columns:
        return []
    rows = rows.assign(members=pd.to_numeric(rows['members'], errors='coerce'))
    ensemble = rows[rows['metric'] == 'augment_accuracy']
    if ensemble.empty:
        return []
    union = rows[rows['metric'] == 'augment_union_accuracy']
    plain = rows[rows['metric'] == 'accuracy']
    exclude = ('dataset', 'augment', 'diag_reg')
    datasets = facet_values(ensemble, 'dataset')
    kinds = facet_values(ensemble, 'augment')
    colors = line_colors(ensemble, 'members', exclude)
    # One accuracy scale per dataset: augmentations side by side.
    fig, axes = panels(len(datasets), len(kinds), 4.6, 3.6, sharey='row')
    table = []
    for i, dataset in enumerate(datasets):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            # facet_values gives [None] for a column that does not vary.
            facet = {column: value for column, value in
                     (('dataset', dataset), ('augment', kind)) if value is not None}
            part = matching_rows(ensemble, facet)
            largest = part['members'].max()
            for settings, label, group in series_of(part, 'members', exclude,
                                                  label_rows=ensemble):
                stats = best_over_diag_reg(group, 'members')
                # The plain predictor of the same runs (it has no augment label).
                base = matching_rows(plain, {**facet, **settings, 'augment': None})
                if 'run_dir' in group.columns:
                    base = base[base['run_dir'].isin(group['run_dir'].unique())]
                if len(base):
                    stats = pd.concat([best_over_diag_reg(base).assign(
                        members=0).set_index('members'), stats])
                line = draw_line(ax, stats, label, settings.get('kernel'),
                             color=colors.get(colour_key(settings)))
                whole = matching_rows(union, {**facet, **settings})
                points = stats.assign(members=stats.index)
                if len(whole):
                    best = best_over_diag_reg(whole)
                    ax.plot([largest], best['mean'], marker='*', ms=11, ls='none',
                            color=line.get_color(), markeredgecolor='k', mew=0.5)
                    points = pd.concat([points, best.assign(members=-1)])
                for _, point in points.iterrows():
                    table.append(dict(settings, dataset=group['dataset'].iloc[0],
                                      augment=group['augment'].iloc[0],
                                      members=int(point['members']),
                                      mean=point['mean'], std=point['std'],
                                      count=point['count'],
                                      diag_reg=point['diag_reg']))
            ax.set_xlabel('ensemble members $k$ (0: no augmentation)', fontsize=8)
            ax.set_ylabel('best test accuracy over ' + r'$\varepsilon$', fontsize=8)
            kind = kind if kind is not None else part['augment'].iloc[0]
            title = ', '.join(str(v) for v in (dataset, kind) if v is not None)
            ax.set_title(title + ('; star: all of [x; flip(x)]'
                                  if len(matching_rows(union, facet)) else ''),
                         fontsize=9)
            ax.grid(alpha=0.3)
    return finish_grid(fig, axes, with_title('Data augmentation by ensembling '
                                               'kernel predictors (Lee et al. 2020)',
                                               ensemble),
                        out_dir, 'augment', table)
