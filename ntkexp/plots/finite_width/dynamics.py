"""Lee et al. 2019, Fig. 2: the network's test outputs against the NTK
dynamics and the linearised network, their distance against the width and
the test loss along training.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots.finite_width.common import (
    DISTANCE_REFERENCE, MODEL_LABELS, PREDICTOR_LABELS, PREDICTOR_STYLE, diverged_runs,
    loglog_by_model, metric_rows, model_label, note_diverged, plain_rows, save_figure,
    save_with_slopes, split_diverged, step_range)
from ntkexp.plots.rows import last_step, line_columns


def plot_distance(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Distance to the NTK dynamics and to the linearised net vs width."""
    frame = plain_rows(frame)
    present = [m for m in ('dist_ntk', 'dist_linearized')
               if not metric_rows(frame, m).empty]
    if not present:
        return []
    rows = frame[frame['metric'].isin(present)]
    if 'split' in rows.columns:
        rows = rows[rows['split'] == 'test']
    rows = last_step(rows)
    # Not the distance to a predictor that diverged, nor from a network that
    # did: those points measure the blow-up (and would set the slopes).
    def compared(metric):
        return ('net', DISTANCE_REFERENCE[metric])

    diverged = diverged_runs(frame)
    rows, dropped = split_diverged(rows, diverged, compared)
    # A trend needs two widths of one architecture (e.g. lee2020_finite trains
    # FC at 512 and CNN-VEC at 16 channels: no distance-vs-width figure).
    if rows.empty or rows.groupby(line_columns(rows), dropna=False)[
            'width'].nunique().max() < 2:
        return []
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    styles = {'dist_ntk': 'o-', 'dist_linearized': 's--'}
    labels = {'dist_ntk': 'to NTK dynamics: ', 'dist_linearized': 'to linearised: '}
    fits = []
    for metric in present:
        for fit in loglog_by_model(ax, rows[rows['metric'] == metric],
                                    labels[metric], styles[metric]):
            fits.append(dict(metric=metric, **fit))
    ax.set_xlabel('width $n$')
    steps = step_range(rows)
    ax.set_ylabel(r'RMS $|f_t(x) - f^{\mathrm{ref}}_t(x)|$ on the test set' + (
        '' if steps is None else f' (step {steps[1]:g})' if steps[0] == steps[1]
        else f" (each run's last step, {steps[0]:g}-{steps[1]:g})"))
    ax.set_title('finite network vs ' + ' and '.join(
        {'dist_ntk': 'its NTK dynamics', 'dist_linearized': 'its linearisation'}[m]
        for m in present))
    note_diverged(ax, dropped, diverged, compared)
    ax.legend(fontsize=7)
    return save_with_slopes(fig, out_dir, f'{name}_distance', fits)


def plot_curves(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Test loss along training per width, network and references."""
    frame = plain_rows(frame)
    rows = metric_rows(frame, 'test_loss')
    if rows.empty or 'step' not in rows.columns or rows['step'].nunique() < 2:
        return []
    plt = figures.pyplot()
    widths = sorted(rows['width'].dropna().unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(4 * len(widths), 3.4),
                             squeeze=False, sharey=True)
    lines = line_columns(rows)
    # Time t = lr * steps when every line shares the lr, else steps (the
    # standard parameterisation's lr is width-dependent and tiny).
    xcol = 't' if 't' in rows.columns and (
        rows.groupby('step')['t'].nunique().max() <= 1) else 'step'
    diverged = diverged_runs(frame)
    for ax, width in zip(axes[0], widths):
        part = rows[rows['width'] == width]
        for key, group in part.groupby(lines + ['predictor'], dropna=False):
            predictor = key[-1]
            stats = group.groupby(xcol)['value'].mean().sort_index()
            label = (model_label(rows, key[:-1]) + ', ' +
                     PREDICTOR_LABELS.get(predictor, predictor))
            line, = ax.plot(stats.index, stats.values,
                            PREDICTOR_STYLE.get(predictor, '-'), label=label)
            if not split_diverged(group, diverged,
                                   lambda _, p=predictor: (p,))[1].empty:
                ax.annotate('diverged', (stats.index[-1], stats.values[-1]),
                            fontsize=7, ha='right', va='bottom',
                            color=line.get_color())
        names = sorted({MODEL_LABELS.get(str(m), str(m)) for m in part['model']})
        ax.set_title(', '.join(names) + f', width $n={int(width)}$')
        ax.set_xlabel('time $t$ = learning rate x steps' if xcol == 't'
                      else 'GD steps')
        ax.set_yscale('log')
    axes[0][0].set_ylabel('test loss')
    models = [frozenset(rows.loc[rows['width'] == w, 'model']) for w in widths]
    if len(set(models)) > 1:  # e.g. FC at 512 and CNN-VEC at 16: one legend each
        for ax in axes[0]:
            ax.legend(fontsize=6, loc='upper center', bbox_to_anchor=(0.5, -0.2))
    else:
        axes[0][-1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1))
    return save_figure(fig, out_dir, f'{name}_curves')
