"""What the ``kernel_regression`` figures share: labels, the lines and
colours of a sweep (a line per setting that varies), panels, saving, and
the row selections (``t = inf``, largest training set, matching settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ntkexp.plots import figures


KERNEL_LABELS = {'nngp': 'NNGP', 'ntk': 'NTK'}


MODEL_LABELS = figures.MODEL_LABELS


# Architectures in the order of Lee et al. 2020's Table 1 (others after them).
MODEL_ORDER = ('fc', 'cnn_vec', 'lcn', 'cnn', 'cnn_gap', 'myrtle', 'wrn', 'resnet')


# Architecture options that a model name already fixes (not shown in labels
# when they are constant per model).
MODEL_OPTIONS = ('depth', 'W_std', 'b_std', 'activation', 'filter_size',
                 'readout', 'k', 'alpha', 'parameterization', 'width')


METRIC_LABELS = {
    'accuracy': 'test accuracy',
    'mse': 'test MSE',
    'train_mse': 'train MSE',
    'variance': 'mean predictive variance',
    'kernel_cos_mean': 'mean off-diagonal cosine of $K$',
    'kernel_cos_std': 'spread (std) of off-diagonal cosines',
    'kernel_alignment': 'centred kernel-target alignment',
}


#: The train kernel's geometry (``experiment.kernel_stats``).
KERNEL_STATS = ('kernel_cos_std', 'kernel_cos_mean', 'kernel_alignment')


AXIS_LABELS = {
    'diag_reg': r'diagonal regulariser $\varepsilon$ '
                r'($K + \varepsilon\,\overline{\mathrm{diag}\,K}\,I$)',
    'n_train': 'number of training points $n$',
    't': 'training time $t$ (gradient flow)',
    'depth': 'depth $L$ (hidden layers / residual blocks)',
}


# Columns that identify a line (when they vary), in legend order.
SETTING_COLUMNS = ('model', 'kernel', 'dataset', 'depth', 'W_std', 'b_std',
                   'activation', 'filter_size', 'readout', 'k', 'alpha',
                   'alpha_gamma',
                   'parameterization', 'precision', 'zca', 'standardize',
                   'stats_from', 'targets', 'width', 'n_train', 'diag_reg', 't')


KERNEL_STYLE = {'nngp': '--', 'ntk': '-'}


def varies(frame: pd.DataFrame, column: str) -> bool:
    # dropna=False: a missing value (zca=null) is a setting of its own.
    return (column in frame.columns
            and frame[column].astype(str).nunique(dropna=False) > 1)


def value_label(column: str, value) -> str:
    if column == 'kernel':
        return KERNEL_LABELS.get(str(value), str(value))
    if column == 'model':
        return MODEL_LABELS.get(str(value), str(value))
    if column == 'dataset':
        return str(value)
    if column == 'zca':
        return 'no ZCA' if is_missing(value) else f'ZCA {float(value):g}'
    if column == 'alpha_gamma':  # the ResNet's alpha = L^(-gamma); FC rows: none
        return '' if is_missing(value) else figures.depth_exponent_text(value)
    return f'{column}={figures.value_text(value)}'


def is_missing(value) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def is_fixed(frame: pd.DataFrame, column: str, by: Iterable[str]) -> bool:
    """Whether ``column`` takes one value per combination of the ``by`` columns."""
    by = [c for c in by if c in frame.columns]
    if not by:
        return not varies(frame, column)
    values = frame[column].astype(str).groupby(
        [frame[c].astype(str) for c in by], dropna=False)
    return bool((values.nunique(dropna=False) <= 1).all())


def series_keys(frame: pd.DataFrame, x: str, exclude: Iterable[str] = (),
                 label_rows: pd.DataFrame | None = None) -> list[str]:
    """The setting columns that split ``frame`` into lines (see :func:`series_of`).

    ``exclude`` are the figure's facets (one panel per value) besides ``x``:
    a setting that one panel fixes (CIFAR-10's depth beside the digits') does
    not split lines, and neither does an architecture option that the model
    and the panel fix (CNN-VEC's flatten readout).
    """
    rows = frame if label_rows is None else label_rows
    facets = [c for c in exclude if c != x]
    return [c for c in SETTING_COLUMNS
            if c != x and c not in facets and c in frame.columns
            and (c in ('kernel', 'model')
                 or (varies(rows, c) and not is_fixed(rows, c, facets)
                     and not (c in MODEL_OPTIONS
                              and is_fixed(rows, c, ['model', *facets]))))]


def series_of(frame: pd.DataFrame, x: str, extra_exclude: Iterable[str] = (),
            label_rows: pd.DataFrame | None = None):
    """Groups of rows that form one line: the settings that vary, except x.

    Architecture options that the model name fixes (CNN-VEC's flatten readout)
    do not split lines further and stay out of the labels. ``label_rows``
    (default ``frame``) are the rows whose varying settings split and label
    the lines: a whole figure's rows, so that one label means one line style
    in every panel (a panel holding one model still names it).
    """
    rows = frame if label_rows is None else label_rows
    keys = series_keys(frame, x, extra_exclude, label_rows)
    shown = [c for c in keys if c != 'model' or varies(rows, 'model')]
    for key, group in frame.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        settings = dict(zip(keys, key))
        label = ' '.join(filter(None, (value_label(c, settings[c]) for c in shown)))
        yield settings, label, group


def swept(frame: pd.DataFrame, x: str,
           ignore: Iterable[str] = ()) -> pd.DataFrame:
    """The rows of the lines that have two or more values of ``x``.

    A line of one point is no sweep: a table collected from unrelated runs
    (one model at one ``diag_reg``, another at three) draws only the sweeps.
    A line is one metric at one value of every other setting column but
    ``ignore`` (columns a figure folds into one line, e.g. the best
    ``diag_reg``).
    """
    if x not in frame.columns or frame.empty:
        return frame.iloc[:0]
    keys = [c for c in SETTING_COLUMNS
            if c != x and c not in ignore and c in frame.columns]
    keys.append('metric')
    values = frame[x].astype(str)
    count = (values.groupby([frame[c].astype(str) for c in keys], dropna=False)
             .transform('nunique'))
    return frame[count.to_numpy() >= 2]


def mean_std(group: pd.DataFrame, x: str) -> pd.DataFrame:
    return group.groupby(x)['value'].agg(['mean', 'std', 'count']).sort_index()


def set_log_x(ax, values: np.ndarray, force: bool = False) -> None:
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


def set_y_scale(ax, metric: str, values: np.ndarray) -> None:
    """Log y for an MSE that spans more than a decade."""
    from matplotlib import ticker  # pylint: disable=g-import-not-at-top
    values = np.asarray(values, float)
    values = values[np.isfinite(values) & (values > 0)]
    if metric.endswith('mse') and values.size and values.max() / values.min() > 10:
        ax.set_yscale('log')
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def model_colors(frame: pd.DataFrame) -> dict[str, str]:
    """One colour per model, in Table-1 order, shared by every panel."""
    if 'model' not in frame.columns or not varies(frame, 'model'):
        return {}
    cycle = [f'C{i}' for i in range(10)]
    return {m: cycle[i % 10] for i, m in enumerate(ordered_models(frame['model']))}


def colour_key(settings: dict) -> tuple:
    """What a line's colour stands for: its settings but the kernel."""
    return tuple(value_label(c, v) for c, v in settings.items() if c != 'kernel')


def line_colors(rows: pd.DataFrame, x: str, exclude: Iterable[str] = ()) -> dict:
    """One colour per line up to its kernel, shared by every panel.

    NNGP (dashed) and NTK (solid) of one setting share a colour; settings are
    coloured in Table-1 order of their model, so that when only the model
    varies each model has one colour, and when another option varies too
    (an activation, a depth) its lines differ in colour as well. One setting
    alone: no fixed colours (NNGP and NTK then differ in colour too).
    """
    keys = series_keys(rows, x, exclude)
    found = []
    for key, _ in rows.groupby(keys, dropna=False, sort=True):
        settings = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        found.append((str(settings.get('model')), colour_key(settings)))
    rank = ({m: i for i, m in enumerate(ordered_models(rows['model']))}
            if 'model' in rows.columns else {})
    found.sort(key=lambda item: (rank.get(item[0], len(rank)), item[1]))
    ordered = list(dict.fromkeys(key for _, key in found))
    if len(ordered) <= 1:
        return {}
    return {key: f'C{i % 10}' for i, key in enumerate(ordered)}


def ordered_models(models) -> list[str]:
    present = list(dict.fromkeys(str(m) for m in models))
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(present, key=lambda m: (rank.get(m, len(rank)), m))


def draw_line(ax, stats: pd.DataFrame, label: str, kernel: str | None, color=None):
    x = stats.index.to_numpy(float)
    mean = stats['mean'].to_numpy()
    std = stats['std'].fillna(0).to_numpy()
    line, = ax.plot(x, mean, KERNEL_STYLE.get(str(kernel), '-'), marker='o',
                    ms=3.5, label=label, color=color)
    if (stats['count'] > 1).any():
        ax.fill_between(x, mean - std, mean + std, alpha=0.2,
                        color=line.get_color(), lw=0)
    return line


def place_legend(fig, ax) -> None:
    """A legend in the first panel, or below the figure when it is long."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) <= 6:
        ax.legend(fontsize=7)
    else:
        figures.legend_below(fig, handles, labels)


def one_setting(rows: pd.DataFrame, note: list[str]) -> pd.DataFrame:
    """Rows of the largest n_train and the smallest diag_reg (noted in ``note``)."""
    if varies(rows, 'n_train'):
        largest = rows['n_train'].max()
        rows = rows[rows['n_train'] == largest]  # rows_title names it
    if varies(rows, 'diag_reg'):
        smallest = rows['diag_reg'].min()
        rows = rows[rows['diag_reg'] == smallest]
        note.append(rf'$\varepsilon$={smallest:g}')
    return rows


def rows_title(frame: pd.DataFrame) -> str:
    parts = []
    for column in ('dataset', 'model'):
        if column in frame.columns and not varies(frame, column):
            parts.append(value_label(column, frame[column].iloc[0]))
    if 'n_train' in frame.columns and not varies(frame, 'n_train'):
        parts.append(f"n={int(frame['n_train'].iloc[0])}")
    if 'seed' in frame.columns and frame['seed'].nunique() > 1:
        parts.append(f"{frame['seed'].nunique()} seeds")
    return ', '.join(parts)


def panels(n_rows: int, n_cols: int, width: float, height: float, **kwargs):
    """A figure of ``n_rows x n_cols`` panels of ``width x height`` inches
    (``kwargs``: ``plt.subplots``', e.g. ``sharey``)."""
    plt = figures.pyplot()
    return plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows),
                        squeeze=False, layout='constrained', **kwargs)


def finish_grid(fig, axes, title: str, out_dir: Path, name: str,
                 table: list[dict]) -> list[Path]:
    """Every panel's legend entries below the figure, the title; saves the
    figure and ``table`` as ``<name>.csv``."""
    handles = all_handles(axes)
    figures.legend_below(fig, list(handles.values()), list(handles))
    fig.suptitle(title, fontsize=9)
    path = Path(out_dir) / f'{name}.csv'
    paths = save_figure(fig, out_dir, name)
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    return figures.save(fig, out_dir, name, dpi=130)


def metrics_in(frame: pd.DataFrame, wanted=('accuracy', 'mse')) -> list[str]:
    present = set(frame['metric'])
    return [m for m in wanted if m in present]


def rows_at_inf(frame: pd.DataFrame) -> pd.DataFrame:
    if 't' not in frame.columns:
        return frame
    t = pd.to_numeric(frame['t'], errors='coerce')
    return frame[t.isna() | np.isinf(t)]


def facet_values(frame: pd.DataFrame, column: str) -> list:
    """The values of a column to draw one panel each (``[None]``: no facet)."""
    if not varies(frame, column):
        return [None]
    values = frame[column].drop_duplicates().tolist()
    return sorted(values, key=lambda v: (not is_missing(v), str(v)))


def facet_rows(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    if value is None and not varies(frame, column):
        return frame
    if is_missing(value):
        return frame[frame[column].isna()]
    return frame[frame[column] == value]


def all_handles(axes) -> dict:
    """Legend entries of every panel, first occurrence of each label."""
    handles: dict = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return handles


def with_title(text: str, rows: pd.DataFrame) -> str:
    title = rows_title(rows)
    return f'{text} — {title}' if title else text


def largest_n_train(rows: pd.DataFrame, per_model: bool = False) -> pd.DataFrame:
    """Per dataset (``per_model``: per dataset and model), the rows of its
    largest n_train (the n_train figure shows the others)."""
    if not varies(rows, 'n_train'):
        return rows
    by = [rows[c] if c in rows.columns else pd.Series(0, rows.index)
          for c in (('dataset', 'model') if per_model else ('dataset',))]
    largest = rows.groupby(by)['n_train'].transform('max')
    return rows[rows['n_train'] == largest]


def matching_rows(rows: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The rows whose columns hold ``settings`` (missing values match missing)."""
    for column, value in settings.items():
        if column not in rows.columns:
            if not is_missing(value):
                return rows.iloc[:0]
            continue
        rows = (rows[rows[column].isna()] if is_missing(value)
                else rows[rows[column].astype(str) == str(value)])
    return rows
