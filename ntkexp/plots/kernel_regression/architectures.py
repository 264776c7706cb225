"""Lee et al. 2020, Table 1 and Sec. 3.3: the best accuracy per architecture,
NNGP against NTK, without / with ZCA (``architectures``), against the ZCA
regulariser (``zca``), NNGP against NTK per setting (``nngp_vs_ntk``), and a
bar chart when no sweep figure applies (``summary``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots.kernel_regression.common import (
    KERNEL_STYLE, METRIC_LABELS, SETTING_COLUMNS, facet_values, is_missing, metrics_in,
    model_colors, ordered_models, place_legend, rows_at_inf, rows_title, save_figure,
    series_of, value_label, varies, with_title)
from ntkexp.plots.kernel_regression.selection import architecture_table, selection_text

#: One marker per dataset in the NNGP-against-NTK scatter (5 had left two
#: of seven datasets in the first one's circles).
DATASET_MARKERS = 'o^sDvP*Xhp'


def _preprocessing_label(zca, stats_from: str, label_fit: bool) -> str:
    """'no ZCA' / 'ZCA 0.1', with where its statistics came from when the
    figure holds both (``dataset.stats_from``)."""
    label = value_label('zca', zca)
    return f'{label}, {_stats_label(stats_from)}' if label_fit else label


def _stats_label(stats_from: str) -> str:
    """Where standardisation / ZCA statistics came from, for a legend."""
    return 'train-split stats' if stats_from == 'train_split' else 'subset stats'


def plot_architectures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Best accuracy per architecture, NNGP vs NTK, without / with ZCA
    (Lee et al. 2020, Table 1): one panel per dataset, bars labelled."""
    rows = rows_at_inf(frame)
    if not (varies(rows, 'model') or varies(rows, 'zca')):
        return []
    metric = 'accuracy' if 'accuracy' in set(rows['metric']) else 'mse'
    table = architecture_table(rows, metric)
    if table.empty:
        return []
    datasets = list(dict.fromkeys(table['dataset']))
    variants = (table[['zca', 'stats_from', 'kernel']].drop_duplicates()
                .assign(_z=lambda t: t['zca'].fillna(-1.0))
                .sort_values(['_z', 'stats_from', 'kernel']).drop(columns='_z'))
    variants = list(variants.itertuples(index=False, name=None))
    if len(variants) > 8:  # a ZCA strength sweep: the zca figure shows it
        return []
    label_fit = table['stats_from'].nunique() > 1
    settings = list(dict.fromkeys((z if not is_missing(z) else None, f)
                                  for z, f, _ in variants))
    plt = figures.pyplot()
    n_models = max(table.groupby('dataset')['model'].nunique())
    fig, axes = plt.subplots(1, len(datasets),
                             figsize=(max(3.6, 1.5 * n_models + 1.4) * len(datasets), 3.8),
                             squeeze=False, layout='constrained')
    width = 0.8 / max(1, len(variants))
    shades = {'nngp': 0.55, 'ntk': 1.0}
    for ax, dataset in zip(axes[0], datasets):
        part = table[table['dataset'] == dataset]
        models = ordered_models(part['model'])
        for v, (zca, stats_from, kernel) in enumerate(variants):
            sel = part[(part['kernel'] == kernel) & (part['stats_from'] == stats_from) &
                       (part['zca'].isna() if is_missing(zca) else part['zca'] == zca)]
            values = sel.set_index(sel['model'].astype(str))['value']
            x = np.arange(len(models)) + (v - (len(variants) - 1) / 2) * width
            heights = [values.get(m, np.nan) for m in models]
            # One colour per preprocessing (no ZCA: C0, as before the option).
            setting = settings.index((None if is_missing(zca) else zca, stats_from))
            color = f'C{setting}' if label_fit else ('C0' if is_missing(zca) else 'C1')
            bars = ax.bar(x, heights, width, color=color,
                          alpha=shades.get(str(kernel), 1.0),
                          hatch='//' if kernel == 'nngp' else None,
                          edgecolor='white', lw=0.5,
                          label=f"{value_label('kernel', kernel)}, "
                                f"{_preprocessing_label(zca, stats_from, label_fit)}")
            for bar, h in zip(bars, heights):
                if np.isfinite(h):
                    ax.text(bar.get_x() + bar.get_width() / 2, h, f'{h:.3f}',
                            ha='center', va='bottom', fontsize=6, rotation=90)
        sizes = part.groupby(part['model'].astype(str))['n_train'].max()
        mixed = sizes.nunique() > 1  # models at different n: each says its own
        ax.set_xticks(np.arange(len(models)), [
            value_label('model', m) + (f'\nn={int(sizes[m])}' if mixed else '')
            for m in models])
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        finite = part['value'].to_numpy(float)
        if metric == 'accuracy' and finite.size:
            # Bars from 0: a cut baseline makes their lengths lie (0.915
            # looked half of 0.985).
            # Room above the bars for their labels, ticks up to 1 only.
            ax.set_ylim(0.0, np.nanmax(finite) + 0.12)
            ax.set_yticks([t for t in ax.get_yticks() if t <= 1.0 + 1e-9])
        n = part['n_train'].max()
        ax.set_title(f"{dataset}" + (f', n={int(n)}' if np.isfinite(n) and not mixed
                                     else ''), fontsize=9)
        ax.grid(alpha=0.3, axis='y')
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='outside lower center', fontsize=7,
               ncol=min(len(handles), 4))
    fig.suptitle('Infinite-width kernels per architecture '
                 f'({selection_text(table, metric)})', fontsize=9)
    path = out_dir / 'architectures.csv'
    table.to_csv(path, index=False)
    return save_figure(fig, out_dir, 'architectures') + [path]


def plot_zca(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy against the ZCA regulariser, one panel per dataset (Lee et
    al. 2020 find that "regularized ZCA whitening improves accuracy").

    Each point is the best test accuracy over ``diag_reg``
    (:func:`architecture_table`); one line per model (colour), kernel (dashed
    NNGP, solid NTK) and, when both occur, where the statistics came from
    (``dataset.stats_from``: circles subset, squares train split). The same
    setting without ZCA is a dotted horizontal line in its colour. Drawn
    when two or more ZCA strengths were run.
    """
    rows = rows_at_inf(frame)
    if 'zca' not in rows.columns:
        return []
    strengths = pd.to_numeric(rows['zca'], errors='coerce').dropna().unique()
    if len(strengths) < 2:
        return []
    metric = 'accuracy' if 'accuracy' in set(rows['metric']) else 'mse'
    table = architecture_table(rows, metric)
    datasets = list(dict.fromkeys(table['dataset']))
    models = ordered_models(table['model'])
    fits = sorted(table['stats_from'].unique())
    settings = [(m, f) for m in models for f in fits]
    label_model, label_fit = len(models) > 1, len(fits) > 1
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.8 * len(datasets), 3.8),
                             squeeze=False, layout='constrained')
    for ax, dataset in zip(axes[0], datasets):
        part = table[table['dataset'] == dataset]
        for (model, fit), group in part.groupby(['model', 'stats_from'], sort=False):
            color = f'C{settings.index((str(model), fit)) % 10}'
            for kernel, line in group.groupby('kernel'):
                label = ', '.join(
                    ([value_label('model', model)] if label_model else [])
                    + [value_label('kernel', kernel)]
                    + ([_stats_label(fit)] if label_fit else []))
                whitened = line[line['zca'].notna()].sort_values('zca')
                ax.plot(whitened['zca'], whitened['value'],
                        KERNEL_STYLE.get(str(kernel), '-'), color=color,
                        marker='s' if fit == 'train_split' else 'o', ms=3.5,
                        label=label)
                plain = line[line['zca'].isna()]
                if len(plain):
                    ax.axhline(float(plain['value'].iloc[0]), color=color, lw=0.8,
                               ls=':')
        ax.set_xscale('log')
        ax.set_xlabel('ZCA regulariser (relative to the mean eigenvalue)')
        ax.set_ylabel(selection_text(table, metric) if 'selected_on' in table
                      else f'best test {metric} over ' + r'$\varepsilon$')
        n = part['n_train'].max()
        ax.set_title(f'{dataset}' + (f', n={int(n)}' if np.isfinite(n) else '')
                     + '; dotted: no ZCA', fontsize=9)
        ax.grid(alpha=0.3, which='both')
    place_legend(fig, axes[0][0])
    fig.suptitle('Regularised ZCA whitening (Lee et al. 2020)', fontsize=9)
    return save_figure(fig, out_dir, 'zca')


def plot_nngp_vs_ntk(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """NNGP against NTK for matched settings (Lee et al. 2020, Sec. 3.3)."""
    rows = rows_at_inf(frame)
    if 'kernel' not in rows.columns or not {'nngp', 'ntk'} <= set(rows['kernel']):
        return []
    metrics = metrics_in(rows)
    if not metrics:
        return []
    keys = [c for c in SETTING_COLUMNS if c in rows.columns and c != 'kernel']
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.8 * len(metrics), 3.6),
                             squeeze=False, layout='constrained')
    drawn = False
    for ax, metric in zip(axes[0], metrics):
        data = rows[rows['metric'] == metric]
        table = (data.groupby(keys + ['kernel'], dropna=False)['value'].mean()
                 .unstack('kernel').dropna(subset=['nngp', 'ntk']))
        if table.empty:
            continue
        drawn = True
        colour_by = 'model' if varies(data, 'model') else (
            'dataset' if varies(data, 'dataset') else None)
        marker_by = ('dataset' if colour_by == 'model' and varies(data, 'dataset')
                     else None)
        if colour_by:
            colors = model_colors(data) if colour_by == 'model' else {}
            datasets = facet_values(data, 'dataset')  # a marker each (there are 8)
            markers = {d: DATASET_MARKERS[i % len(DATASET_MARKERS)]
                       for i, d in enumerate(datasets)}
            levels = [colour_by] + ([marker_by] if marker_by else [])
            for value, part in table.groupby(level=levels, dropna=False):
                value = value if isinstance(value, tuple) else (value,)
                label = ', '.join(value_label(c, v) for c, v in zip(levels, value))
                ax.scatter(part['nngp'], part['ntk'], s=14, label=label,
                           color=colors.get(str(value[0])),
                           marker=markers.get(value[1], 'o') if marker_by else 'o')
            ax.legend(fontsize=7)
        else:
            ax.scatter(table['nngp'], table['ntk'], s=14)
        low = float(np.nanmin(table[['nngp', 'ntk']].to_numpy()))
        high = float(np.nanmax(table[['nngp', 'ntk']].to_numpy()))
        pad = 0.05 * (high - low or abs(high) or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], 'k:', lw=1)
        name = METRIC_LABELS.get(metric, metric)
        ax.set_xlabel(f'NNGP {name}')
        ax.set_ylabel(f'NTK {name}')
        ax.grid(alpha=0.3)
    if not drawn:
        figures.pyplot().close(fig)
        return []
    fig.suptitle(with_title('NNGP vs NTK, each point one setting', rows),
                 fontsize=9)
    return save_figure(fig, out_dir, 'nngp_vs_ntk')


def plot_summary(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Bar chart of accuracy (or MSE) per setting, when no sweep figure applies."""
    rows = rows_at_inf(frame)
    metrics = metrics_in(rows, ('accuracy',)) or metrics_in(rows, ('mse',))
    if not metrics:
        return []
    metric = metrics[0]
    data = rows[rows['metric'] == metric]
    labels, means, stds = [], [], []
    for _, label, group in series_of(data, '__none__'):
        labels.append(label)
        means.append(group['value'].mean())
        stds.append(group['value'].std() if len(group) > 1 else 0.0)
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(labels) + 1.5), 3.4),
                           layout='constrained')
    ax.bar(range(len(labels)), means, yerr=np.nan_to_num(stds), capsize=3)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha='right', fontsize=8)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if metric == 'accuracy':
        ax.set_ylim(max(0.0, min(means) - 0.1) if means else 0.0, 1.0)
    ax.grid(alpha=0.3, axis='y')
    ax.set_title(f'Infinite-width kernel regression — {rows_title(rows)}', fontsize=9)
    return save_figure(fig, out_dir, 'summary')
