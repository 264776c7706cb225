"""What the ``finite_width`` figures share: labels and styles of the
predictors, saving, row selection, and the runs a diverged predictor leaves
out (a learning rate above ``2 / lambda_max`` of its kernel; Lee et al. 2019,
Sec. 2.4), and the log-log lines with fitted slopes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp import ntk_drift
from ntkexp.plots import figures
from ntkexp.plots.rows import last_step, line_columns


MODEL_LABELS = figures.MODEL_LABELS


#: Accuracy of guessing, drawn on accuracy bar charts of these datasets.
CHANCE = {'cifar10': 0.1, 'mnist': 0.1, 'digits': 0.1, 'fashion_mnist': 0.1,
          'cifar100': 0.01}


PREDICTOR_LABELS = {'net': 'network', 'linearized': 'linearised network',
                    'net_centered': 'centred network $f_t - f_0$',
                    'ntk': 'NTK dynamics (same $f_0$)',
                    'ntk_mean': 'NTK dynamics ($f_0=0$)',
                    'infinite': r'$n=\infty$'}


PREDICTOR_STYLE = {'net': '-', 'linearized': '--', 'ntk': ':', 'ntk_mean': '-.',
                   'net_centered': '-'}


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    return figures.save(fig, out_dir, name, dpi=110)


def save_with_slopes(fig, out_dir: Path, name: str,
                      fits: list[dict]) -> list[Path]:
    """The figure ``name`` and its fitted slopes as ``<name>_slopes.csv``."""
    table = out_dir / f'{name}_slopes.csv'
    paths = save_figure(fig, out_dir, name)
    pd.DataFrame(fits).to_csv(table, index=False)
    return paths + [table]


def plain_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without ``attrs`` (a run's summary table breaks joins)."""
    frame = frame.copy(deep=False)
    frame.attrs = {}
    return frame


def step_range(rows: pd.DataFrame) -> tuple[float, float] | None:
    """The smallest and largest ``step`` of ``rows`` (each run's last step,
    for a figure's label: runs of different lengths must not be labelled
    with one of them); None without steps."""
    if 'step' not in rows.columns or rows['step'].dropna().empty:
        return None
    steps = rows['step'].dropna()
    return float(steps.min()), float(steps.max())


def metric_rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame[frame['metric'] == metric]


def model_label(frame: pd.DataFrame, key, columns: list[str] | None = None) -> str:
    parts = []
    values = key if isinstance(key, tuple) else (key,)
    for column, value in zip(columns or line_columns(frame), values):
        if column == 'model':
            parts.append(MODEL_LABELS.get(str(value), str(value)))
        elif column == 'alpha_gamma' and not pd.isna(value):  # the ResNet's alpha
            parts.append(figures.depth_exponent_text(value))
        elif not pd.isna(value):  # NaN: the run kept the config's default
            parts.append(f'{column}={figures.value_text(value)}')
    return ', '.join(parts)


#: The reference each distance compares the network with.
DISTANCE_REFERENCE = {'dist_ntk': 'ntk', 'dist_linearized': 'linearized'}


RUN_KEYS = ['run_dir', 'width', 'seed']


def diverged_runs(frame: pd.DataFrame) -> set[tuple]:
    """``(run_dir, width, seed, predictor)``, as strings, of every predictor
    whose training diverged (the experiment's ``diverged_at_step`` rows: a
    learning rate above ``2 / lambda_max`` of its kernel)."""
    rows = metric_rows(frame, 'diverged_at_step')
    keys = rows.reindex(columns=RUN_KEYS + ['predictor']).astype(str)
    return set(keys.itertuples(index=False, name=None))


def split_diverged(rows: pd.DataFrame, diverged: set[tuple],
                    predictors) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, dropped)``: a row is dropped when one of ``predictors(metric)``
    diverged in its run, width and seed (its value then measures the blow-up,
    not the network)."""
    if not diverged or rows.empty:
        return rows, rows.iloc[:0]
    keys = rows.reindex(columns=RUN_KEYS).astype(str).itertuples(
        index=False, name=None)
    bad = np.array([any((*key, p) in diverged for p in predictors(metric))
                    for key, metric in zip(keys, rows['metric'])], bool)
    return rows[~bad], rows[bad]


def note_diverged(ax, dropped: pd.DataFrame, diverged: set[tuple],
                   predictors) -> None:
    """One line under ``ax`` naming the predictors, widths and seeds not
    drawn because they diverged (none when nothing was dropped)."""
    if dropped.empty:
        return
    seeds: dict[tuple, set] = {}
    keys = dropped.reindex(columns=RUN_KEYS).astype(str).itertuples(
        index=False, name=None)
    for key, metric, width, seed in zip(keys, dropped['metric'], dropped['width'],
                                        dropped.reindex(columns=['seed'])['seed']):
        for p in predictors(metric):
            if (*key, p) in diverged:
                seeds.setdefault((PREDICTOR_LABELS.get(p, p), int(width)),
                                 set()).add(str(seed))
    parts = [f"{what} at width {width} (seed {', '.join(sorted(s))})"
             for (what, width), s in sorted(seeds.items())]
    ax.text(0.5, -0.2, 'not drawn, diverged (lr above 2/$\\lambda_{max}$ of its '
            'kernel): ' + '; '.join(parts), fontsize=7, ha='center', va='top',
            transform=ax.transAxes)


def best_and_final(accuracy: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys`` (one run and seed each): the best test accuracy over the
    evaluation steps (``best``) and the one at the last step (``final``)."""
    runs = accuracy.groupby(keys, dropna=False)['value'].max().rename(
        'best').to_frame()
    runs['final'] = last_step(accuracy).groupby(keys, dropna=False)[
        'value'].mean()
    return runs


def converged_rows(rows: pd.DataFrame, diverged: set[tuple]) -> pd.DataFrame:
    """``rows`` less those of a predictor that diverged in its run, width
    and seed (each row checked against its own predictor)."""
    if not diverged or rows.empty:
        return rows
    return pd.concat([split_diverged(part, diverged, lambda _, p=p: (p,))[0]
                      for p, part in rows.groupby('predictor', dropna=False)])


def line_key(key) -> tuple[str, ...]:
    """A line's group key as strings (NaN, a key of its own, is then equal
    to itself)."""
    return tuple(str(v) for v in (key if isinstance(key, tuple) else (key,)))


def loglog_by_model(ax, rows: pd.DataFrame, label_prefix: str = '',
                     style: str = 'o-', columns: list[str] | None = None,
                     colours: dict | None = None) -> list[dict]:
    """Mean +- std over seeds against width per line; fitted slopes.

    The slope is fitted to every (width, seed) point; ``slope_3_widest`` only
    to the three widest widths (the asymptotic regime). ``columns`` (default
    :func:`line_columns`) tell the lines apart; ``colours`` maps a line's key
    to its colour (default: the axes' cycle), keyed by :func:`line_key`.
    """
    fits = []
    columns = columns or line_columns(rows)
    for key, part in rows.groupby(columns, dropna=False):
        stats = part.groupby('width')['value'].agg(['mean', 'std']).sort_index()
        label = model_label(rows, key, columns)
        try:
            slope, intercept = ntk_drift.loglog_slope(part['width'], part['value'])
        except ValueError:
            slope = intercept = float('nan')
        top = sorted(part['width'].unique())[-3:]
        wide_slope = None
        if len(stats) > 3:
            wide = part[part['width'].isin(top)]
            wide_slope = ntk_drift.loglog_slope(wide['width'], wide['value'])[0]
        # One width has no slope: the label says so instead of "slope nan".
        text = (f'{label_prefix}{label}: slope {slope:.2f}' if np.isfinite(slope)
                else f'{label_prefix}{label} (one width: no slope)')
        if wide_slope is not None:
            text += f' (3 widest: {wide_slope:.2f})'
        colour = {} if colours is None else {'color': colours[line_key(key)]}
        line = ax.errorbar(stats.index, stats['mean'],
                           yerr=stats['std'].fillna(0), fmt=style, ms=4,
                           capsize=2, label=text, **colour)
        if np.isfinite(slope):
            w = np.array([stats.index.min(), stats.index.max()], float)
            ax.plot(w, np.exp(intercept) * w ** slope, ':',
                    color=line[0].get_color(), lw=1)
        fit = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        fit.update(slope=slope, intercept=intercept,
                   widths=len(stats), points=len(part))
        if wide_slope is not None:
            fit['slope_3_widest'] = wide_slope
        fits.append(fit)
    ax.set_xscale('log')
    ax.set_yscale('log')
    return fits


def place_legend(ax, lines: int, inside_up_to: int = 3, below: bool = False) -> None:
    """The legend inside the axes for a few lines; for more (where it would
    cover the data) beside them, or ``below`` them (panels side by side)."""
    if lines <= inside_up_to:
        ax.legend(fontsize=8)
    elif below:
        ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.16),
                  borderaxespad=0.0)
    else:
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0)
