"""Figures of the ``kernel_regression`` experiment (infinite-width NNGP / NTK).

Drawn from the experiment's long-format rows (many runs; mean +- std over
seeds), each only when the table has what it needs:

* ``architectures``: the best test accuracy over ``diag_reg`` per
  architecture (FC, CNN-VEC, CNN-GAP, ...), NNGP vs NTK, without / with ZCA,
  one panel per dataset (Lee et al. 2020, Table 1; numbers from
  :func:`architecture_table`, in ``architectures.csv``); where the runs
  scored a validation split (``dataset.n_valid``), the test accuracy at the
  ``diag_reg`` best on it;
* ``diag_reg``: test accuracy and MSE against the diagonal regulariser
  ``eps`` of ``K + eps * mean(diag K) * I``, one line per kernel and model
  (Lee et al. 2020, Sec. 3.7 / Fig. 5: regularisation of NNGP and NTK);
* ``zca``: the best test accuracy over ``diag_reg`` against the ZCA
  regulariser, when two or more strengths were run (Lee et al. 2020's ZCA
  study);
* ``n_train``: test accuracy against the number of training points, log
  scale (Arora et al. 2020, "Harnessing the power of infinitely wide deep
  nets on small-data tasks", Fig. 1 / Table 1; Lee et al. 2020 Fig. 6);
* ``nngp_vs_ntk``: NNGP against NTK performance for matched settings, with
  the diagonal (Lee et al. 2020, Sec. 3.3: "NNGP often outperforms NTK");
* ``time``: test and train MSE along the infinite-width gradient flow at
  finite training times ``t`` (Lee et al. 2019 / 2020).
* ``early_stopping``: test accuracy and MSE against ``diag_reg`` at ``t =
  inf`` (solid) and, on the same axis, against the ``diag_reg`` that each
  finite training time stands for (``t_as_diag_reg``, the flow at the
  smallest ``diag_reg``; markers, dotted), when a run has three or more of
  each (Lee et al. 2020, Sec. 3: diagonal regularisation acts like early
  stopping);
* ``depth``: against the depth, the best test accuracy over ``diag_reg`` and
  the train kernel's geometry rows (``experiment.kernel_stats``: spread and
  mean of the off-diagonal cosines, centred kernel-target alignment), one
  line per model (and ``alpha_gamma``) and kernel, one row of panels per
  dataset (Huang et al. 2020: the FC NTK degenerates with depth, the
  ResNTK with ``alpha = L^(-gamma)`` does not); with ``depth.csv``;
* ``augment``: the best test accuracy over ``diag_reg`` of the
  data-augmentation ensemble against its size (``experiment.augment``;
  Lee et al. 2020, ensembling kernel predictors), from the plain predictor at
  0 members; a star for one predictor on all of ``[x; flip(x)]``; one panel
  per dataset and augmentation; with ``augment.csv``;

Only ``t = inf`` (fully trained / posterior mean) rows enter the first three.
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


def _varies(frame: pd.DataFrame, column: str) -> bool:
    # dropna=False: a missing value (zca=null) is a setting of its own.
    return (column in frame.columns
            and frame[column].astype(str).nunique(dropna=False) > 1)


def _label(column: str, value) -> str:
    if column == 'kernel':
        return KERNEL_LABELS.get(str(value), str(value))
    if column == 'model':
        return MODEL_LABELS.get(str(value), str(value))
    if column == 'dataset':
        return str(value)
    if column == 'zca':
        return 'no ZCA' if _missing(value) else f'ZCA {float(value):g}'
    if column == 'alpha_gamma':  # the ResNet's alpha = L^(-gamma); FC rows: none
        return '' if _missing(value) else rf'$\alpha = L^{{-{float(value):g}}}$'
    return f'{column}={figures.value_text(value)}'


def _missing(value) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _fixed(frame: pd.DataFrame, column: str, by: Iterable[str]) -> bool:
    """Whether ``column`` takes one value per combination of the ``by`` columns."""
    by = [c for c in by if c in frame.columns]
    if not by:
        return not _varies(frame, column)
    values = frame[column].astype(str).groupby(
        [frame[c].astype(str) for c in by], dropna=False)
    return bool((values.nunique(dropna=False) <= 1).all())


def _series_keys(frame: pd.DataFrame, x: str, exclude: Iterable[str] = (),
                 label_rows: pd.DataFrame | None = None) -> list[str]:
    """The setting columns that split ``frame`` into lines (see :func:`_series`).

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
                 or (_varies(rows, c) and not _fixed(rows, c, facets)
                     and not (c in MODEL_OPTIONS
                              and _fixed(rows, c, ['model', *facets]))))]


def _series(frame: pd.DataFrame, x: str, extra_exclude: Iterable[str] = (),
            label_rows: pd.DataFrame | None = None):
    """Groups of rows that form one line: the settings that vary, except x.

    Architecture options that the model name fixes (CNN-VEC's flatten readout)
    do not split lines further and stay out of the labels. ``label_rows``
    (default ``frame``) are the rows whose varying settings split and label
    the lines: a whole figure's rows, so that one label means one line style
    in every panel (a panel holding one model still names it).
    """
    rows = frame if label_rows is None else label_rows
    keys = _series_keys(frame, x, extra_exclude, label_rows)
    shown = [c for c in keys if c != 'model' or _varies(rows, 'model')]
    for key, group in frame.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        settings = dict(zip(keys, key))
        label = ' '.join(filter(None, (_label(c, settings[c]) for c in shown)))
        yield settings, label, group


def _swept(frame: pd.DataFrame, x: str,
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


def _model_colors(frame: pd.DataFrame) -> dict[str, str]:
    """One colour per model, in Table-1 order, shared by every panel."""
    if 'model' not in frame.columns or not _varies(frame, 'model'):
        return {}
    cycle = [f'C{i}' for i in range(10)]
    return {m: cycle[i % 10] for i, m in enumerate(_ordered_models(frame['model']))}


def _colour_key(settings: dict) -> tuple:
    """What a line's colour stands for: its settings but the kernel."""
    return tuple(_label(c, v) for c, v in settings.items() if c != 'kernel')


def _line_colors(rows: pd.DataFrame, x: str, exclude: Iterable[str] = ()) -> dict:
    """One colour per line up to its kernel, shared by every panel.

    NNGP (dashed) and NTK (solid) of one setting share a colour; settings are
    coloured in Table-1 order of their model, so that when only the model
    varies each model has one colour, and when another option varies too
    (an activation, a depth) its lines differ in colour as well. One setting
    alone: no fixed colours (NNGP and NTK then differ in colour too).
    """
    keys = _series_keys(rows, x, exclude)
    found = []
    for key, _ in rows.groupby(keys, dropna=False, sort=True):
        settings = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        found.append((str(settings.get('model')), _colour_key(settings)))
    rank = ({m: i for i, m in enumerate(_ordered_models(rows['model']))}
            if 'model' in rows.columns else {})
    found.sort(key=lambda item: (rank.get(item[0], len(rank)), item[1]))
    ordered = list(dict.fromkeys(key for _, key in found))
    if len(ordered) <= 1:
        return {}
    return {key: f'C{i % 10}' for i, key in enumerate(ordered)}


def _ordered_models(models) -> list[str]:
    present = list(dict.fromkeys(str(m) for m in models))
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(present, key=lambda m: (rank.get(m, len(rank)), m))


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
    """A legend in the first panel, or below the figure when it is long."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) <= 6:
        ax.legend(fontsize=7)
    else:
        figures.legend_below(fig, handles, labels)


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


def _panels(n_rows: int, n_cols: int, width: float, height: float, **kwargs):
    """A figure of ``n_rows x n_cols`` panels of ``width x height`` inches
    (``kwargs``: ``plt.subplots``', e.g. ``sharey``)."""
    plt = figures.pyplot()
    return plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows),
                        squeeze=False, layout='constrained', **kwargs)


def _finish_grid(fig, axes, title: str, out_dir: Path, name: str,
                 table: list[dict]) -> list[Path]:
    """Every panel's legend entries below the figure, the title; saves the
    figure and ``table`` as ``<name>.csv``."""
    handles = _all_handles(axes)
    figures.legend_below(fig, list(handles.values()), list(handles))
    fig.suptitle(title, fontsize=9)
    path = Path(out_dir) / f'{name}.csv'
    paths = _save(fig, out_dir, name)
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    return figures.save(fig, out_dir, name, dpi=130)


def _metrics(frame: pd.DataFrame, wanted=('accuracy', 'mse')) -> list[str]:
    present = set(frame['metric'])
    return [m for m in wanted if m in present]


def _at_inf(frame: pd.DataFrame) -> pd.DataFrame:
    if 't' not in frame.columns:
        return frame
    t = pd.to_numeric(frame['t'], errors='coerce')
    return frame[t.isna() | np.isinf(t)]


def _facet_values(frame: pd.DataFrame, column: str) -> list:
    """The values of a column to draw one panel each (``[None]``: no facet)."""
    if not _varies(frame, column):
        return [None]
    values = frame[column].drop_duplicates().tolist()
    return sorted(values, key=lambda v: (not _missing(v), str(v)))


def _facet(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    if value is None and not _varies(frame, column):
        return frame
    if _missing(value):
        return frame[frame[column].isna()]
    return frame[frame[column] == value]


def _all_handles(axes) -> dict:
    """Legend entries of every panel, first occurrence of each label."""
    handles: dict = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return handles


def _with_title(text: str, rows: pd.DataFrame) -> str:
    title = _title(rows)
    return f'{text} — {title}' if title else text


def _largest_n_train(rows: pd.DataFrame, per_model: bool = False) -> pd.DataFrame:
    """Per dataset (``per_model``: per dataset and model), the rows of its
    largest n_train (the n_train figure shows the others)."""
    if not _varies(rows, 'n_train'):
        return rows
    by = [rows[c] if c in rows.columns else pd.Series(0, rows.index)
          for c in (('dataset', 'model') if per_model else ('dataset',))]
    largest = rows.groupby(by)['n_train'].transform('max')
    return rows[rows['n_train'] == largest]


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
    rows = _swept(_largest_n_train(_at_inf(frame)), 'diag_reg')
    valid = rows[rows['metric'].astype(str).str.startswith('val_')]
    metrics = _metrics(rows)
    if not metrics:
        return []
    datasets = _facet_values(rows, 'dataset')
    zcas = _facet_values(rows, 'zca')
    if len(zcas) <= 2:
        panel_rows = [(dataset, None) for dataset in datasets]
        columns = [(metric, zca) for metric in metrics for zca in zcas]
    else:  # a ZCA strength sweep: rows, not a strip of 2 x len(zcas) panels
        panel_rows = [(dataset, zca) for dataset in datasets for zca in zcas]
        columns = [(metric, None) for metric in metrics]
    colors = _line_colors(rows, 'diag_reg', ('dataset', 'zca'))
    rings = False
    plt = figures.pyplot()
    fig, axes = plt.subplots(len(panel_rows), len(columns),
                             figsize=(4.2 * len(columns), 3.4 * len(panel_rows)),
                             squeeze=False, layout='constrained')
    for i, (dataset, row_zca) in enumerate(panel_rows):
        part = _facet(rows, 'dataset', dataset)
        for j, (metric, column_zca) in enumerate(columns):
            zca = row_zca if len(zcas) > 2 else column_zca
            ax = axes[i][j]
            data = _facet(part[part['metric'] == metric], 'zca', zca)
            title = [_label('dataset', dataset) if dataset is not None else '',
                     _label('zca', zca) if zca is not None else '']
            title = ', '.join(t for t in title if t)
            if title:
                ax.set_title(title, fontsize=9)
            if data.empty:
                ax.axis('off')
                ax.text(0.5, 0.5, r'no $\varepsilon$ sweep', ha='center',
                        va='center', transform=ax.transAxes, color='0.5')
                continue
            lines = list(_series(data, 'diag_reg', ('dataset', 'zca'),
                                 label_rows=rows))
            order = ({m: k for k, m in enumerate(_ordered_models(data['model']))}
                     if 'model' in data.columns else {})
            lines.sort(key=lambda item: order.get(str(item[0].get('model')), 0))
            panel_valid = _facet(_facet(valid[valid['metric'] == f'val_{metric}'],
                                        'dataset', dataset), 'zca', zca)
            for settings, label, group in lines:
                stats = _mean_std(group, 'diag_reg')
                line = _line(ax, stats, label, settings.get('kernel'),
                             color=colors.get(_colour_key(settings)))
                picked = _validation_pick(stats, _matching(panel_valid, settings),
                                          metric)
                if picked is not None:
                    ax.scatter([picked], [stats.loc[picked, 'mean']], s=90,
                               facecolors='none', edgecolors=line.get_color(),
                               linewidths=1.3, zorder=3)
                    rings = True
            _set_log_x(ax, data['diag_reg'].to_numpy(float), force=True)
            ax.set_xlabel(AXIS_LABELS['diag_reg'], fontsize=8)
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            _set_y_scale(ax, metric, data['value'])
            ax.grid(alpha=0.3)
        for metric in metrics:  # one y range per metric in a row: ZCA off vs on
            same = [axes[i][j] for j, (m, _) in enumerate(columns)
                    if m == metric and axes[i][j].axison]
            if len(same) > 1 and all(a.get_yscale() == 'linear' for a in same):
                low = min(a.get_ylim()[0] for a in same)
                high = max(a.get_ylim()[1] for a in same)
                for a in same:
                    a.set_ylim(low, high)
    handles = _all_handles(axes)
    title = 'NNGP (dashed) and NTK (solid) against regularisation'
    if rings:
        ring = r'$\varepsilon$ best on validation'
        handles[ring] = plt.Line2D([], [], ls='none', marker='o', ms=9,
                                   mfc='none', mec='0.3')
        title += r'; rings: the $\varepsilon$ picked on validation'
    figures.legend_below(fig, list(handles.values()), list(handles))
    fig.suptitle(_with_title(title, rows), fontsize=9)
    return _save(fig, out_dir, 'diag_reg')


def _validation_pick(stats: pd.DataFrame, valid: pd.DataFrame, metric: str):
    """The ``diag_reg`` of ``stats`` (a line's test means, indexed by
    ``diag_reg``) whose mean ``valid`` score (the line's ``val_<metric>``
    rows) is best, by :func:`_pick_on_validation` as the tables pick it, or
    None when the line has no validation rows at its ``diag_reg`` values."""
    stats, select = _pick_on_validation(stats.reset_index(), valid, ['diag_reg'], [],
                                        'mean', 'val_mean')
    if (stats['selected_on'] != 'validation').all():
        return None
    best = select.idxmin() if metric.endswith('mse') else select.idxmax()
    return stats.loc[best, 'diag_reg']


def architecture_table(frame: pd.DataFrame, metric: str = 'accuracy') -> pd.DataFrame:
    """Lee et al. 2020 Table 1 from the rows: the best ``metric`` over
    ``diag_reg`` per dataset, model, ZCA setting and kernel (t = inf).

    Seeds are averaged at each ``diag_reg`` before the best one is taken;
    with several ``n_train`` only each model's largest on each dataset enters
    (column ``n_train``: a model run only on fewer points keeps its row).
    Where the runs scored a validation split (``dataset.n_valid``: rows
    ``val_<metric>``), the best ``diag_reg`` is the one best on it, as Lee et
    al. 2020 tune it, and ``value`` is the test score there; otherwise it is
    the best on the test rows themselves, which is optimistic.

    Returns:
        Columns ``dataset, model, zca, stats_from, kernel, value, diag_reg,
        n_train`` (``zca`` NaN = none; ``stats_from`` 'subset' where rows
        predate it), models in Table-1 order (FC, CNN-VEC, CNN-GAP); with
        validation rows also ``val_value`` (the validation score at that
        ``diag_reg``) and ``selected_on`` ('validation', or 'test' for a
        setting run without a validation split).
    """
    columns = ['dataset', 'model', 'zca', 'stats_from', 'kernel', 'value',
               'diag_reg', 'n_train']
    rows = _largest_n_train(_at_inf(frame), per_model=True)
    valid = rows[rows['metric'] == f'val_{metric}']
    rows = rows[rows['metric'] == metric]
    if rows.empty or 'kernel' not in rows.columns:
        return pd.DataFrame(columns=columns)
    keys = ['dataset', 'model', 'zca', 'stats_from', 'kernel']
    means = (_table_keys(rows).groupby(keys + ['diag_reg'], dropna=False)
             .agg(value=('value', 'mean'), n_train=('n_train', 'max'))
             .reset_index())
    select = means['value']
    if not valid.empty:
        columns += ['val_value', 'selected_on']
        means, select = _pick_on_validation(means, _table_keys(valid), keys + ['diag_reg'],
                                            keys, 'value', 'val_value')
    pick = select.groupby([means[k] for k in keys], dropna=False)
    best = pick.idxmin() if metric.endswith('mse') else pick.idxmax()
    table = means.loc[best.to_numpy()].reset_index(drop=True)
    rank = {m: i for i, m in enumerate(_ordered_models(table['model']))}
    table = table.assign(_rank=table['model'].astype(str).map(rank),
                         _zca=table['zca'].fillna(-1.0))
    table = table.sort_values(['dataset', '_rank', '_zca', 'stats_from', 'kernel'])
    return table.drop(columns=['_rank', '_zca']).reset_index(drop=True)[columns]


def _pick_on_validation(stats: pd.DataFrame, valid: pd.DataFrame, by: list[str],
                        groups: list[str], score: str, name: str
                        ) -> tuple[pd.DataFrame, pd.Series]:
    """``stats`` (one ``score`` per ``by``, ``diag_reg`` among them) with the
    mean of the ``valid`` rows' values beside it as ``name`` and a column
    ``selected_on``, and the scores that pick each group's ``diag_reg``
    (per ``groups``; one group when empty): the validation means in a group
    that has any ('validation'), else ``score`` ('test'). ``valid`` may be
    empty."""
    scores = valid.groupby(by, dropna=False)['value'].mean().rename(name).reset_index()
    stats = stats.merge(scores, on=by, how='left')
    has_valid = (stats.groupby(groups, dropna=False)[name].transform('count') > 0
                 if groups else pd.Series(stats[name].notna().any(), stats.index))
    stats['selected_on'] = np.where(has_valid, 'validation', 'test')
    return stats, stats[score].where(~has_valid, stats[name])


def _table_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with :func:`architecture_table`'s key columns, filled where
    a run predates them (``zca`` numeric, ``stats_from`` 'subset')."""
    rows = rows.copy()
    for column, default in (('dataset', ''), ('model', ''), ('zca', np.nan),
                            ('stats_from', 'subset'), ('diag_reg', np.nan),
                            ('n_train', np.nan)):
        if column not in rows.columns:
            rows[column] = default
    rows['zca'] = pd.to_numeric(rows['zca'], errors='coerce')
    rows['stats_from'] = rows['stats_from'].fillna('subset').astype(str)
    return rows


def _selection_text(table: pd.DataFrame, metric: str) -> str:
    """How :func:`architecture_table` picked ``diag_reg``, for a title."""
    on = set(table['selected_on']) if 'selected_on' in table else {'test'}
    if on == {'validation'}:
        return f'test {metric} at the ' + r'$\varepsilon$ best on validation'
    best = 'highest' if metric == 'accuracy' else 'lowest'
    text = f'{best} test {metric} over ' + r'$\varepsilon$'
    return text + ('; where run, at the best on validation' if 'validation' in on else '')


def _preprocessing_label(zca, stats_from: str, label_fit: bool) -> str:
    """'no ZCA' / 'ZCA 0.1', with where its statistics came from when the
    figure holds both (``dataset.stats_from``)."""
    label = _label('zca', zca)
    return f'{label}, {_stats_label(stats_from)}' if label_fit else label


def _stats_label(stats_from: str) -> str:
    """Where standardisation / ZCA statistics came from, for a legend."""
    return 'train-split stats' if stats_from == 'train_split' else 'subset stats'


def plot_architectures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Best accuracy per architecture, NNGP vs NTK, without / with ZCA
    (Lee et al. 2020, Table 1): one panel per dataset, bars labelled."""
    rows = _at_inf(frame)
    if not (_varies(rows, 'model') or _varies(rows, 'zca')):
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
    settings = list(dict.fromkeys((z if not _missing(z) else None, f)
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
        models = _ordered_models(part['model'])
        for v, (zca, stats_from, kernel) in enumerate(variants):
            sel = part[(part['kernel'] == kernel) & (part['stats_from'] == stats_from) &
                       (part['zca'].isna() if _missing(zca) else part['zca'] == zca)]
            values = sel.set_index(sel['model'].astype(str))['value']
            x = np.arange(len(models)) + (v - (len(variants) - 1) / 2) * width
            heights = [values.get(m, np.nan) for m in models]
            # One colour per preprocessing (no ZCA: C0, as before the option).
            setting = settings.index((None if _missing(zca) else zca, stats_from))
            color = f'C{setting}' if label_fit else ('C0' if _missing(zca) else 'C1')
            bars = ax.bar(x, heights, width, color=color,
                          alpha=shades.get(str(kernel), 1.0),
                          hatch='//' if kernel == 'nngp' else None,
                          edgecolor='white', lw=0.5,
                          label=f"{_label('kernel', kernel)}, "
                                f"{_preprocessing_label(zca, stats_from, label_fit)}")
            for bar, h in zip(bars, heights):
                if np.isfinite(h):
                    ax.text(bar.get_x() + bar.get_width() / 2, h, f'{h:.3f}',
                            ha='center', va='bottom', fontsize=6, rotation=90)
        sizes = part.groupby(part['model'].astype(str))['n_train'].max()
        mixed = sizes.nunique() > 1  # models at different n: each says its own
        ax.set_xticks(np.arange(len(models)), [
            _label('model', m) + (f'\nn={int(sizes[m])}' if mixed else '')
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
                 f'({_selection_text(table, metric)})', fontsize=9)
    path = out_dir / 'architectures.csv'
    table.to_csv(path, index=False)
    return _save(fig, out_dir, 'architectures') + [path]


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
    rows = _at_inf(frame)
    if 'zca' not in rows.columns:
        return []
    strengths = pd.to_numeric(rows['zca'], errors='coerce').dropna().unique()
    if len(strengths) < 2:
        return []
    metric = 'accuracy' if 'accuracy' in set(rows['metric']) else 'mse'
    table = architecture_table(rows, metric)
    datasets = list(dict.fromkeys(table['dataset']))
    models = _ordered_models(table['model'])
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
                    ([_label('model', model)] if label_model else [])
                    + [_label('kernel', kernel)]
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
        ax.set_ylabel(_selection_text(table, metric) if 'selected_on' in table
                      else f'best test {metric} over ' + r'$\varepsilon$')
        n = part['n_train'].max()
        ax.set_title(f'{dataset}' + (f', n={int(n)}' if np.isfinite(n) else '')
                     + '; dotted: no ZCA', fontsize=9)
        ax.grid(alpha=0.3, which='both')
    _legend(fig, axes[0][0])
    fig.suptitle('Regularised ZCA whitening (Lee et al. 2020)', fontsize=9)
    return _save(fig, out_dir, 'zca')


def plot_n_train(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy against training-set size (Arora et al. 2020, Fig. 1).

    Only lines run at two or more sizes are drawn (a table may also hold a
    dataset run at one size, e.g. Lee 2020's digits next to CIFAR-10).
    """
    rows = _swept(_at_inf(frame), 'n_train')
    metrics = _metrics(rows, ('accuracy',)) or _metrics(rows, ('mse',))
    if not metrics:
        return []
    metric = metrics[0]
    data = rows[rows['metric'] == metric]
    regs = sorted(data['diag_reg'].dropna().unique()) if 'diag_reg' in data else [None]
    if len(regs) > 4:  # four evenly spaced panels
        regs = [regs[i] for i in np.linspace(0, len(regs) - 1, 4).round().astype(int)]
    colors = _line_colors(data, 'n_train', ('diag_reg',))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(regs), figsize=(4.6 * len(regs), 3.6),
                             squeeze=False, sharey=True,
                             layout='constrained')
    for ax, reg in zip(axes[0], regs):
        panel = data if reg is None else data[data['diag_reg'] == reg]
        lines = list(_series(panel, 'n_train', ('diag_reg',), label_rows=data))
        order = ({m: k for k, m in enumerate(_ordered_models(panel['model']))}
                 if 'model' in panel.columns else {})
        lines.sort(key=lambda item: order.get(str(item[0].get('model')), 0))
        for settings, label, group in lines:
            _line(ax, _mean_std(group, 'n_train'), label, settings.get('kernel'),
                  color=colors.get(_colour_key(settings)))
        _set_log_x(ax, panel['n_train'].to_numpy(float), force=True)
        ax.set_xlabel(AXIS_LABELS['n_train'])
        if reg is not None and len(regs) > 1:
            ax.set_title(rf'$\varepsilon$ = {reg:g}', fontsize=9)
        ax.grid(alpha=0.3, which='both')
    axes[0][0].set_ylabel(METRIC_LABELS.get(metric, metric))
    _legend(fig, axes[0][0])
    fig.suptitle(_with_title('Small-data regime (Arora et al. 2020)', rows),
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
        colour_by = 'model' if _varies(data, 'model') else (
            'dataset' if _varies(data, 'dataset') else None)
        marker_by = ('dataset' if colour_by == 'model' and _varies(data, 'dataset')
                     else None)
        if colour_by:
            colors = _model_colors(data) if colour_by == 'model' else {}
            markers = dict(zip(_facet_values(data, 'dataset'), 'o^sDv'))
            levels = [colour_by] + ([marker_by] if marker_by else [])
            for value, part in table.groupby(level=levels, dropna=False):
                value = value if isinstance(value, tuple) else (value,)
                label = ', '.join(_label(c, v) for c, v in zip(levels, value))
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
    fig.suptitle(_with_title('NNGP vs NTK, each point one setting', rows),
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
    plt = figures.pyplot()
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
    at_inf = _at_inf(frame)
    finite = frame[np.isfinite(pd.to_numeric(frame['t'], errors='coerce'))
                   & frame['t_as_diag_reg'].notna()]
    if finite.empty or at_inf.empty:
        return []
    finite = finite[finite['diag_reg'] == finite['diag_reg'].min()]
    if at_inf['diag_reg'].nunique() < 3 or finite['t'].nunique() < 3:
        return []
    keys = [c for c in ('model', 'kernel') if c in frame.columns]
    metrics = _metrics(frame, ('accuracy', 'mse'))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.9),
                             squeeze=False, layout='constrained')
    table = []
    for ax, metric in zip(axes[0], metrics):
        regs = at_inf[at_inf['metric'] == metric]
        times = finite[finite['metric'] == metric]
        for i, (key, part) in enumerate(regs.groupby(keys, dropna=False)):
            key = key if isinstance(key, tuple) else (key,)
            label = ' '.join(_label(c, v) for c, v in zip(keys, key))
            kernel = dict(zip(keys, key)).get('kernel')
            color = f'C{i}'
            stats = _mean_std(part, 'diag_reg')
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
        _set_y_scale(ax, metric, np.concatenate([regs['value'].to_numpy(float),
                                                 times['value'].to_numpy(float)]))
        ax.grid(alpha=0.3)
    _legend(fig, axes[0][0])
    fig.suptitle('Diagonal regularisation vs early stopping (Lee et al. 2020) — '
                 + _title(at_inf), fontsize=9)
    paths = _save(fig, out_dir, 'early_stopping')
    path = Path(out_dir) / 'early_stopping.csv'
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]


def _best_over_diag_reg(rows: pd.DataFrame, x: str | None = None,
                        valid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean +- std over seeds at each ``diag_reg`` (per ``x``), then the
    ``diag_reg`` with the largest mean (accuracy); indexed by ``x``, or one
    row without ``x``. With ``valid`` rows (the same line's
    ``val_accuracy``, ``dataset.n_valid``), the ``diag_reg`` with the largest
    validation mean instead, where there is one (column ``selected_on``:
    'validation' or 'test'; ``valid`` may be empty).
    Rows without a ``diag_reg`` (the kernel-geometry metrics) are just
    averaged, with ``diag_reg`` NaN."""
    if 'diag_reg' not in rows.columns or rows['diag_reg'].isna().all():
        return _mean_std(rows, x).assign(diag_reg=np.nan)
    by = ([x] if x else []) + ['diag_reg']
    stats = rows.groupby(by)['value'].agg(['mean', 'std', 'count']).reset_index()
    select = stats['mean']
    if valid is not None:  # possibly empty: this line ran without validation
        stats, select = _pick_on_validation(stats, valid, by, [x] if x else [],
                                            'mean', 'val_mean')
    if x is None:
        return stats.loc[[select.idxmax()]]
    best = stats.loc[select.groupby(stats[x]).idxmax()]
    return best.set_index(x).sort_index()


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
    rows = _at_inf(frame)
    rows = rows.assign(depth=pd.to_numeric(rows['depth'], errors='coerce'))
    valid = rows[rows['metric'] == 'val_accuracy']
    rows = rows[rows['metric'].isin(('accuracy',) + KERNEL_STATS)]
    # A line is a sweep when it has two depths; diag_reg does not split lines.
    rows = _swept(rows[rows['depth'].notna()], 'depth', ignore=('diag_reg',))
    metrics = _metrics(rows, ('accuracy',) + KERNEL_STATS)
    if not metrics:
        return []
    exclude = ('dataset', 'diag_reg')
    datasets = _facet_values(rows, 'dataset')
    colors = _line_colors(rows, 'depth', exclude)
    fig, axes = _panels(len(datasets), len(metrics), 4.0, 3.3)
    table = []
    for i, dataset in enumerate(datasets):
        part = _facet(rows, 'dataset', dataset)
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            data = part[part['metric'] == metric]
            for settings, label, group in _series(data, 'depth', exclude,
                                                  label_rows=rows):
                picked_on = (_matching(_facet(valid, 'dataset', dataset), settings)
                             if metric == 'accuracy' and not valid.empty else None)
                stats = _best_over_diag_reg(group, 'depth', picked_on)
                _line(ax, stats, label, settings.get('kernel'),
                      color=colors.get(_colour_key(settings)))
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
            _set_log_x(ax, data['depth'].to_numpy(float), force=True)
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
                ax.set_title(_label('dataset', dataset), fontsize=9)
            ax.grid(alpha=0.3, which='both')
    return _finish_grid(fig, axes, _with_title('Depth: accuracy and kernel '
                                               'degeneracy (Huang et al. 2020)', rows),
                        out_dir, 'depth', table)


def _matching(rows: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The rows whose columns hold ``settings`` (missing values match missing)."""
    for column, value in settings.items():
        if column not in rows.columns:
            if not _missing(value):
                return rows.iloc[:0]
            continue
        rows = (rows[rows[column].isna()] if _missing(value)
                else rows[rows[column].astype(str) == str(value)])
    return rows


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
    rows = _at_inf(frame)
    if 'members' not in rows.columns:
        return []
    rows = rows.assign(members=pd.to_numeric(rows['members'], errors='coerce'))
    ensemble = rows[rows['metric'] == 'augment_accuracy']
    if ensemble.empty:
        return []
    union = rows[rows['metric'] == 'augment_union_accuracy']
    plain = rows[rows['metric'] == 'accuracy']
    exclude = ('dataset', 'augment', 'diag_reg')
    datasets = _facet_values(ensemble, 'dataset')
    kinds = _facet_values(ensemble, 'augment')
    colors = _line_colors(ensemble, 'members', exclude)
    # One accuracy scale per dataset: augmentations side by side.
    fig, axes = _panels(len(datasets), len(kinds), 4.6, 3.6, sharey='row')
    table = []
    for i, dataset in enumerate(datasets):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            # _facet_values gives [None] for a column that does not vary.
            facet = {column: value for column, value in
                     (('dataset', dataset), ('augment', kind)) if value is not None}
            part = _matching(ensemble, facet)
            largest = part['members'].max()
            for settings, label, group in _series(part, 'members', exclude,
                                                  label_rows=ensemble):
                stats = _best_over_diag_reg(group, 'members')
                # The plain predictor of the same runs (it has no augment label).
                base = _matching(plain, {**facet, **settings, 'augment': None})
                if 'run_dir' in group.columns:
                    base = base[base['run_dir'].isin(group['run_dir'].unique())]
                if len(base):
                    stats = pd.concat([_best_over_diag_reg(base).assign(
                        members=0).set_index('members'), stats])
                line = _line(ax, stats, label, settings.get('kernel'),
                             color=colors.get(_colour_key(settings)))
                whole = _matching(union, {**facet, **settings})
                points = stats.assign(members=stats.index)
                if len(whole):
                    best = _best_over_diag_reg(whole)
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
                                  if len(_matching(union, facet)) else ''),
                         fontsize=9)
            ax.grid(alpha=0.3)
    return _finish_grid(fig, axes, _with_title('Data augmentation by ensembling '
                                               'kernel predictors (Lee et al. 2020)',
                                               ensemble),
                        out_dir, 'augment', table)


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
    plt = figures.pyplot()
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
    for column in ('diag_reg', 't', 'n_train', 't_as_diag_reg', 'members'):
        if column in frame.columns:
            frame = frame.assign(**{column: pd.to_numeric(frame[column],
                                                          errors='coerce')})
    paths: list[Path] = plot_depth(frame, out_dir) + plot_augment(frame, out_dir)
    # The tables that pick diag_reg also read the validation scores.
    picked = frame[frame['metric'].isin(['accuracy', 'mse', 'val_accuracy', 'val_mse'])]
    frame = frame[frame['metric'].isin(['accuracy', 'mse', 'train_mse', 'variance'])]
    for figure in (plot_architectures, plot_diag_reg, plot_zca, plot_n_train,
                   plot_nngp_vs_ntk, plot_time, plot_early_stopping):
        paths += figure(picked if figure in (plot_architectures, plot_diag_reg, plot_zca)
                        else frame,
                        out_dir)
    if not paths:
        paths += plot_summary(frame, out_dir)
    return paths

