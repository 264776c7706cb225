"""Figures of the ``kernel_regression`` experiment (infinite-width NNGP / NTK).

Drawn from the experiment's long-format rows (many runs; mean +- std over
seeds), each only when the table has what it needs:

* ``diag_reg``: test accuracy and MSE against the diagonal regulariser
  ``eps`` of ``K + eps * mean(diag K) * I``, one line per kernel and model
  (Lee et al. 2020, Sec. 3.7 / Fig. 5: regularisation of NNGP and NTK);
* ``n_train``: test accuracy against the number of training points, log
  scale (Arora et al. 2020, "Harnessing the power of infinitely wide deep
  nets on small-data tasks", Fig. 1 / Table 1; Lee et al. 2020 Fig. 6);
* ``nngp_vs_ntk``: NNGP against NTK performance for matched settings, with
  the diagonal (Lee et al. 2020, Sec. 3.3: "NNGP often outperforms NTK");
* ``time``: test and train MSE along the infinite-width gradient flow at
  finite training times ``t`` (Lee et al. 2019 / 2020).

Only ``t = inf`` (fully trained / posterior mean) rows enter the first three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

KERNEL_LABELS = {'nngp': 'NNGP', 'ntk': 'NTK'}
MODEL_LABELS = {'fc': 'FC', 'cnn': 'CNN', 'myrtle': 'Myrtle', 'wrn': 'WRN',
                'resnet': 'ResNet'}
METRIC_LABELS = {
    'accuracy': 'test accuracy',
    'mse': 'test MSE',
    'train_mse': 'train MSE',
    'variance': 'mean predictive variance',
}
AXIS_LABELS = {
    'diag_reg': r'diagonal regulariser $\varepsilon$ '
                r'($K + \varepsilon\,\overline{\mathrm{diag}\,K}\,I$)',
    'n_train': 'number of training points $n$',
    't': 'training time $t$ (gradient flow)',
}
# Columns that identify a line (when they vary), in legend order.
SETTING_COLUMNS = ('model', 'kernel', 'dataset', 'depth', 'W_std', 'b_std',
                   'activation', 'filter_size', 'readout', 'k', 'alpha',
                   'parameterization', 'precision', 'zca', 'standardize',
                   'targets', 'width', 'n_train', 'diag_reg', 't')
KERNEL_STYLE = {'nngp': '--', 'ntk': '-'}


def _plt():
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    return plt


def _varies(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and frame[column].astype(str).nunique() > 1


def _label(column: str, value) -> str:
    if column == 'kernel':
        return KERNEL_LABELS.get(str(value), str(value))
    if column == 'model':
        return MODEL_LABELS.get(str(value), str(value))
    if column == 'dataset':
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f'{column}={value:g}' if isinstance(value, float) else f'{column}={value}'


def _series(frame: pd.DataFrame, x: str, extra_exclude: Iterable[str] = ()):
    """Groups of rows that form one line: the settings that vary, except x."""
    exclude = {x, *extra_exclude}
    keys = [c for c in SETTING_COLUMNS
            if c not in exclude and (_varies(frame, c) or c in ('kernel', 'model'))
            and c in frame.columns]
    for key, group in frame.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        settings = dict(zip(keys, key))
        shown = [c for c in keys if c not in ('model',) or _varies(frame, 'model')]
        label = ' '.join(_label(c, settings[c]) for c in shown)
        yield settings, label, group


def _mean_std(group: pd.DataFrame, x: str) -> pd.DataFrame:
    return group.groupby(x)['value'].agg(['mean', 'std', 'count']).sort_index()


def _set_log_x(ax, values: np.ndarray, force: bool = False) -> None:
    """Log x axis for values spanning decades; ticks at the measured values."""
    from matplotlib import ticker  # pylint: disable=g-import-not-at-top
    values = np.asarray(values, float)
    positive = np.unique(values[values > 0])
    if not positive.size or (positive.max() / positive.min() < 20 and not force):
        return
    if (values <= 0).any():
        ax.set_xscale('symlog', linthresh=positive.min())
    else:
        ax.set_xscale('log')
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    if len(positive) <= 8 and (positive == positive.round()).all():
        ax.set_xticks(positive, [f'{v:g}' for v in positive])


def _set_y_scale(ax, metric: str, values: np.ndarray) -> None:
    """Log y for an MSE that spans more than a decade."""
    from matplotlib import ticker  # pylint: disable=g-import-not-at-top
    values = np.asarray(values, float)
    values = values[np.isfinite(values) & (values > 0)]
    if metric.endswith('mse') and values.size and values.max() / values.min() > 10:
        ax.set_yscale('log')
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def _line(ax, stats: pd.DataFrame, label: str, kernel: str | None, color=None):
    x = stats.index.to_numpy(float)
    mean = stats['mean'].to_numpy()
    std = stats['std'].fillna(0).to_numpy()
    line, = ax.plot(x, mean, KERNEL_STYLE.get(str(kernel), '-'), marker='o',
                    ms=3.5, label=label, color=color)
    if (stats['count'] > 1).any():
        ax.fill_between(x, mean - std, mean + std, alpha=0.2,
                        color=line.get_color(), lw=0)
    return line


def _legend(fig, ax) -> None:
    """A legend in the first panel, or right of the figure when it is long."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) <= 6:
        ax.legend(fontsize=7)
    else:
        fig.legend(handles, labels, loc='outside right upper', fontsize=7)


def _one_setting(rows: pd.DataFrame, note: list[str]) -> pd.DataFrame:
    """Rows of the largest n_train and the smallest diag_reg (noted in ``note``)."""
    if _varies(rows, 'n_train'):
        largest = rows['n_train'].max()
        rows = rows[rows['n_train'] == largest]  # _title names it
    if _varies(rows, 'diag_reg'):
        smallest = rows['diag_reg'].min()
        rows = rows[rows['diag_reg'] == smallest]
        note.append(rf'$\varepsilon$={smallest:g}')
    return rows


def _title(frame: pd.DataFrame) -> str:
    parts = []
    for column in ('dataset', 'model'):
        if column in frame.columns and not _varies(frame, column):
            parts.append(_label(column, frame[column].iloc[0]))
    if 'n_train' in frame.columns and not _varies(frame, 'n_train'):
        parts.append(f"n={int(frame['n_train'].iloc[0])}")
    if 'seed' in frame.columns and frame['seed'].nunique() > 1:
        parts.append(f"{frame['seed'].nunique()} seeds")
    return ', '.join(parts)


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for suffix in ('png', 'pdf'):
        path = out_dir / f'{name}.{suffix}'
        fig.savefig(path, dpi=130, bbox_inches='tight')
        paths.append(path)
    _plt().close(fig)
    return paths


def _metrics(frame: pd.DataFrame, wanted=('accuracy', 'mse')) -> list[str]:
    present = set(frame['metric'])
    return [m for m in wanted if m in present]


def _at_inf(frame: pd.DataFrame) -> pd.DataFrame:
    if 't' not in frame.columns:
        return frame
    t = pd.to_numeric(frame['t'], errors='coerce')
    return frame[t.isna() | np.isinf(t)]


def plot_diag_reg(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy / MSE against the diagonal regulariser (Lee et al. 2020)."""
    rows = _at_inf(frame)
    if not _varies(rows, 'diag_reg'):
        return []
    if _varies(rows, 'n_train'):  # the n_train figure shows the others
        rows = rows[rows['n_train'] == rows['n_train'].max()]
    metrics = _metrics(rows)
    if not metrics:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6),
                             squeeze=False, layout='constrained')
    for ax, metric in zip(axes[0], metrics):
        data = rows[rows['metric'] == metric]
        for settings, label, group in _series(data, 'diag_reg'):
            _line(ax, _mean_std(group, 'diag_reg'), label, settings.get('kernel'))
        _set_log_x(ax, data['diag_reg'].to_numpy(float))
        ax.set_xlabel(AXIS_LABELS['diag_reg'])
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        _set_y_scale(ax, metric, data['value'])
        ax.grid(alpha=0.3)
    _legend(fig, axes[0][0])
    fig.suptitle(f'NNGP and NTK regularisation — {_title(rows)}', fontsize=9)
    return _save(fig, out_dir, 'diag_reg')


def plot_n_train(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy against training-set size (Arora et al. 2020, Fig. 1)."""
    rows = _at_inf(frame)
    if not _varies(rows, 'n_train'):
        return []
    metrics = _metrics(rows, ('accuracy',)) or _metrics(rows, ('mse',))
    if not metrics:
        return []
    metric = metrics[0]
    data = rows[rows['metric'] == metric]
    regs = sorted(data['diag_reg'].dropna().unique()) if 'diag_reg' in data else [None]
    if len(regs) > 4:  # four evenly spaced panels
        regs = [regs[i] for i in np.linspace(0, len(regs) - 1, 4).round().astype(int)]
    plt = _plt()
    fig, axes = plt.subplots(1, len(regs), figsize=(4.6 * len(regs), 3.6),
                             squeeze=False, sharey=True,
                             layout='constrained')
    for ax, reg in zip(axes[0], regs):
        panel = data if reg is None else data[data['diag_reg'] == reg]
        for settings, label, group in _series(panel, 'n_train', ('diag_reg',)):
            _line(ax, _mean_std(group, 'n_train'), label, settings.get('kernel'))
        _set_log_x(ax, panel['n_train'].to_numpy(float), force=True)
        ax.set_xlabel(AXIS_LABELS['n_train'])
        if reg is not None and len(regs) > 1:
            ax.set_title(rf'$\varepsilon$ = {reg:g}', fontsize=9)
        ax.grid(alpha=0.3, which='both')
    axes[0][0].set_ylabel(METRIC_LABELS.get(metric, metric))
    _legend(fig, axes[0][0])
    fig.suptitle(f'Small-data regime (Arora et al. 2020) — {_title(rows)}',
                 fontsize=9)
    return _save(fig, out_dir, 'n_train')


def plot_nngp_vs_ntk(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """NNGP against NTK for matched settings (Lee et al. 2020, Sec. 3.3)."""
    rows = _at_inf(frame)
    if 'kernel' not in rows.columns or not {'nngp', 'ntk'} <= set(rows['kernel']):
        return []
    metrics = _metrics(rows)
    if not metrics:
        return []
    keys = [c for c in SETTING_COLUMNS if c in rows.columns and c != 'kernel']
    plt = _plt()
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
        colour_by = 'model' if _varies(data, 'model') else (
            'dataset' if _varies(data, 'dataset') else None)
        if colour_by:
            for value, part in table.groupby(level=colour_by, dropna=False):
                ax.scatter(part['nngp'], part['ntk'], s=14,
                           label=_label(colour_by, value))
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
        _plt().close(fig)
        return []
    fig.suptitle(f'NNGP vs NTK, each point one setting — {_title(rows)}',
                 fontsize=9)
    return _save(fig, out_dir, 'nngp_vs_ntk')


def plot_time(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Test and train MSE along the infinite-width gradient flow."""
    if 't' not in frame.columns:
        return []
    t = pd.to_numeric(frame['t'], errors='coerce')
    rows = frame[np.isfinite(t)]
    if not _varies(rows, 't'):
        return []
    note: list[str] = []
    rows = _one_setting(rows, note)
    metrics = _metrics(rows, ('accuracy', 'mse', 'train_mse'))
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6),
                             squeeze=False, layout='constrained')
    for ax, metric in zip(axes[0], metrics):
        data = rows[rows['metric'] == metric]
        for settings, label, group in _series(data, 't'):
            _line(ax, _mean_std(group, 't'), label, settings.get('kernel'))
        _set_log_x(ax, data['t'].to_numpy(float))
        ax.set_xlabel(AXIS_LABELS['t'])
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        _set_y_scale(ax, metric, data['value'])
        ax.grid(alpha=0.3)
    _legend(fig, axes[0][0])
    title = ', '.join([_title(rows)] + note).strip(', ')
    fig.suptitle(f'Infinite-width gradient flow — {title}', fontsize=9)
    return _save(fig, out_dir, 'time')


def plot_summary(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Bar chart of accuracy (or MSE) per setting, when no sweep figure applies."""
    rows = _at_inf(frame)
    metrics = _metrics(rows, ('accuracy',)) or _metrics(rows, ('mse',))
    if not metrics:
        return []
    metric = metrics[0]
    data = rows[rows['metric'] == metric]
    labels, means, stds = [], [], []
    for _, label, group in _series(data, '__none__'):
        labels.append(label)
        means.append(group['value'].mean())
        stds.append(group['value'].std() if len(group) > 1 else 0.0)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(labels) + 1.5), 3.4),
                           layout='constrained')
    ax.bar(range(len(labels)), means, yerr=np.nan_to_num(stds), capsize=3)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha='right', fontsize=8)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if metric == 'accuracy':
        ax.set_ylim(max(0.0, min(means) - 0.1) if means else 0.0, 1.0)
    ax.grid(alpha=0.3, axis='y')
    ax.set_title(f'Infinite-width kernel regression — {_title(rows)}', fontsize=9)
    return _save(fig, out_dir, 'summary')


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws every figure the rows support; returns the files (PNG and PDF).

    Args:
        frame: ``kernel_regression`` rows from ``ntkexp collect`` (ok runs).
        out_dir: where the figures go (created).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = frame[frame['metric'].isin(['accuracy', 'mse', 'train_mse', 'variance'])]
    for column in ('diag_reg', 't', 'n_train'):
        if column in frame.columns:
            frame = frame.assign(**{column: pd.to_numeric(frame[column],
                                                          errors='coerce')})
    paths: list[Path] = []
    for figure in (plot_diag_reg, plot_n_train, plot_nngp_vs_ntk, plot_time):
        paths += figure(frame, out_dir)
    if not paths:
        paths += plot_summary(frame, out_dir)
    return paths

