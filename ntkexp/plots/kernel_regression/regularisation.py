"""Lee et al. 2020, Sec. 3.7 and Fig. 5: the diagonal regulariser
(``diag_reg``), the gradient flow at finite times (``time``), and diagonal
regularisation as early stopping (``early_stopping``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots.kernel_regression.common import (
    AXIS_LABELS, KERNEL_STYLE, METRIC_LABELS, all_handles, colour_key, draw_line, facet_rows,
    facet_values, largest_n_train, line_colors, matching_rows, mean_std, metrics_in,
    one_setting, ordered_models, place_legend, rows_at_inf, rows_title, save_figure, series_of,
    set_log_x, set_y_scale, swept, value_label, varies, with_title)
from ntkexp.plots.kernel_regression.selection import validation_pick


def plot_diag_reg(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy / MSE against the diagonal regulariser (Lee et al. 2020).

    One row of panels per dataset, one column per metric and ZCA setting
    (when they vary; with more than two ZCA settings, one row per dataset
    and ZCA setting, one column per metric); in each panel one line per
    model (colour) and kernel (dashed NNGP, solid NTK). Only lines run at two
    or more ``diag_reg`` are drawn; a panel with none says so. Where a line's
    runs scored a validation split (``dataset.n_valid``: rows
    ``val_<metric>``), a ring marks its test score at the ``diag_reg`` best
    on validation (seeds averaged first), the pick that
    :func:`architecture_table` reports.
    """
    rows = swept(largest_n_train(rows_at_inf(frame)), 'diag_reg')
    valid = rows[rows['metric'].astype(str).str.startswith('val_')]
    metrics = metrics_in(rows)
    if not metrics:
        return []
    datasets = facet_values(rows, 'dataset')
    zcas = facet_values(rows, 'zca')
    if len(zcas) <= 2:
        panel_rows = [(dataset, None) for dataset in datasets]
        columns = [(metric, zca) for metric in metrics for zca in zcas]
    else:  # a ZCA strength sweep: rows, not a strip of 2 x len(zcas) panels
        panel_rows = [(dataset, zca) for dataset in datasets for zca in zcas]
        columns = [(metric, None) for metric in metrics]
    colors = line_colors(rows, 'diag_reg', ('dataset', 'zca'))
    rings = False
    plt = figures.pyplot()
    fig, axes = plt.subplots(len(panel_rows), len(columns),
                             figsize=(4.2 * len(columns), 3.4 * len(panel_rows)),
                             squeeze=False, layout='constrained')
    for i, (dataset, row_zca) in enumerate(panel_rows):
        part = facet_rows(rows, 'dataset', dataset)
        for j, (metric, column_zca) in enumerate(columns):
            zca = row_zca if len(zcas) > 2 else column_zca
            ax = axes[i][j]
            data = facet_rows(part[part['metric'] == metric], 'zca', zca)
            title = [value_label('dataset', dataset) if dataset is not None else '',
                     value_label('zca', zca) if zca is not None else '']
            title = ', '.join(t for t in title if t)
            if title:
                ax.set_title(title, fontsize=9)
            if data.empty:
                ax.axis('off')
                ax.text(0.5, 0.5, r'no $\varepsilon$ sweep', ha='center',
                        va='center', transform=ax.transAxes, color='0.5')
                continue
            lines = list(series_of(data, 'diag_reg', ('dataset', 'zca'),
                                 label_rows=rows))
            order = ({m: k for k, m in enumerate(ordered_models(data['model']))}
                     if 'model' in data.columns else {})
            lines.sort(key=lambda item: order.get(str(item[0].get('model')), 0))
            panel_valid = facet_rows(facet_rows(valid[valid['metric'] == f'val_{metric}'],
                                        'dataset', dataset), 'zca', zca)
            for settings, label, group in lines:
                stats = mean_std(group, 'diag_reg')
                line = draw_line(ax, stats, label, settings.get('kernel'),
                             color=colors.get(colour_key(settings)))
                picked = validation_pick(stats, matching_rows(panel_valid, settings),
                                          metric)
                if picked is not None:
                    ax.scatter([picked], [stats.loc[picked, 'mean']], s=90,
                               facecolors='none', edgecolors=line.get_color(),
                               linewidths=1.3, zorder=3)
                    rings = True
            set_log_x(ax, data['diag_reg'].to_numpy(float), force=True)
            ax.set_xlabel(AXIS_LABELS['diag_reg'], fontsize=8)
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            set_y_scale(ax, metric, data['value'])
            ax.grid(alpha=0.3)
        for metric in metrics:  # one y range per metric in a row: ZCA off vs on
            same = [axes[i][j] for j, (m, _) in enumerate(columns)
                    if m == metric and axes[i][j].axison]
            if len(same) > 1 and all(a.get_yscale() == 'linear' for a in same):
                low = min(a.get_ylim()[0] for a in same)
                high = max(a.get_ylim()[1] for a in same)
                for a in same:
                    a.set_ylim(low, high)
    handles = all_handles(axes)
    title = 'NNGP (dashed) and NTK (solid) against regularisation'
    if rings:
        ring = r'$\varepsilon$ best on validation'
        handles[ring] = plt.Line2D([], [], ls='none', marker='o', ms=9,
                                   mfc='none', mec='0.3')
        title += r'; rings: the $\varepsilon$ picked on validation'
    figures.legend_below(fig, list(handles.values()), list(handles))
    fig.suptitle(with_title(title, rows), fontsize=9)
    return save_figure(fig, out_dir, 'diag_reg')


def plot_time(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Test and train MSE along the infinite-width gradient flow."""
    if 't' not in frame.columns:
        return []
    t = pd.to_numeric(frame['t'], errors='coerce')
    rows = frame[np.isfinite(t)]
    if not varies(rows, 't'):
        return []
    note: list[str] = []
    rows = one_setting(rows, note)
    metrics = metrics_in(rows, ('accuracy', 'mse', 'train_mse'))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6),
                             squeeze=False, layout='constrained')
    for ax, metric in zip(axes[0], metrics):
        data = rows[rows['metric'] == metric]
        for settings, label, group in series_of(data, 't'):
            draw_line(ax, mean_std(group, 't'), label, settings.get('kernel'))
        set_log_x(ax, data['t'].to_numpy(float))
        ax.set_xlabel(AXIS_LABELS['t'])
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        set_y_scale(ax, metric, data['value'])
        ax.grid(alpha=0.3)
    place_legend(fig, axes[0][0])
    title = ', '.join([rows_title(rows)] + note).strip(', ')
    fig.suptitle(f'Infinite-width gradient flow — {title}', fontsize=9)
    return save_figure(fig, out_dir, 'time')


def plot_early_stopping(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Diagonal regularisation against early stopping, on one axis.

    Per model and kernel: the ``t = inf`` rows against ``diag_reg`` (solid),
    and the finite-``t`` rows at the smallest ``diag_reg`` against their
    ``t_as_diag_reg`` (:func:`ntkexp.experiments.kernel_regression.
    t_as_diag_reg`; dotted, open markers). Also writes
    ``early_stopping.csv`` with both curves.
    """
    if 't_as_diag_reg' not in frame.columns or 't' not in frame.columns:
        return []
    at_inf = rows_at_inf(frame)
    finite = frame[np.isfinite(pd.to_numeric(frame['t'], errors='coerce'))
                   & frame['t_as_diag_reg'].notna()]
    if finite.empty or at_inf.empty:
        return []
    finite = finite[finite['diag_reg'] == finite['diag_reg'].min()]
    if at_inf['diag_reg'].nunique() < 3 or finite['t'].nunique() < 3:
        return []
    keys = [c for c in ('model', 'kernel') if c in frame.columns]
    metrics = metrics_in(frame, ('accuracy', 'mse'))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.9),
                             squeeze=False, layout='constrained')
    table = []
    for ax, metric in zip(axes[0], metrics):
        regs = at_inf[at_inf['metric'] == metric]
        times = finite[finite['metric'] == metric]
        for i, (key, part) in enumerate(regs.groupby(keys, dropna=False)):
            key = key if isinstance(key, tuple) else (key,)
            label = ' '.join(value_label(c, v) for c, v in zip(keys, key))
            kernel = dict(zip(keys, key)).get('kernel')
            color = f'C{i}'
            stats = mean_std(part, 'diag_reg')
            ax.plot(stats.index, stats['mean'], KERNEL_STYLE.get(str(kernel), '-'),
                    color=color, marker='o', ms=3.5, label=f'{label}, diag_reg')
            flow = times
            for c, v in zip(keys, key):
                flow = flow[flow[c] == v]
            flow_stats = flow.groupby('t_as_diag_reg')['value'].mean().sort_index()
            ax.plot(flow_stats.index, flow_stats.values, ':', color=color,
                    marker='s', ms=4, mfc='none', label=f'{label}, stopped at t')
            for x, value in stats['mean'].items():
                table.append(dict(zip(keys, key), metric=metric, how='diag_reg',
                                  diag_reg=x, value=value))
            for (x, t), value in flow.groupby(['t_as_diag_reg', 't'])[
                    'value'].mean().items():
                table.append(dict(zip(keys, key), metric=metric, how='t',
                                  diag_reg=x, t=t, value=value))
        ax.set_xscale('log')
        ax.set_xlabel(r'$\varepsilon$, or for time $t$: '
                      r'$\varepsilon_t = N \ln 2\,/\,(t\,\overline{\mathrm{diag}\,K})$')
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        set_y_scale(ax, metric, np.concatenate([regs['value'].to_numpy(float),
                                                 times['value'].to_numpy(float)]))
        ax.grid(alpha=0.3)
    place_legend(fig, axes[0][0])
    fig.suptitle('Diagonal regularisation vs early stopping (Lee et al. 2020) — '
                 + rows_title(at_inf), fontsize=9)
    paths = save_figure(fig, out_dir, 'early_stopping')
    path = Path(out_dir) / 'early_stopping.csv'
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]
