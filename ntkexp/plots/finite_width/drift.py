"""How far the empirical NTK moves in training: its relative change against
the width (Li, Luo & Yip 2020; Lee et al. 2019, Fig. 1), against a
ResNet's branch scale or a centring, per parameter leaf, and what the
neural tangent hierarchy predicts of it (Huang & Yau 2020).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import drift_tables
from ntkexp.plots import figures
from ntkexp.plots.finite_width.common import (
    diverged_runs, line_key, loglog_by_model, metric_rows, model_label, note_diverged,
    place_legend, plain_rows, save_figure, save_with_slopes, split_diverged, step_range)
from ntkexp.plots.rows import last_step, line_columns


#: The NTK changes ``plot_ntk_drift`` draws: metric -> (the predictor whose
#: divergence drops its rows, legend prefix, line style).
DRIFTS = {'ntk_drift': ('net', '', 'o-'),
          'ntk_drift_centered': ('net_centered', 'centred ', 's--')}


#: The legs of each change (:func:`ntkexp.ntk_drift.scale_and_shape_change`):
#: the signed change of the kernel's scale and the change of its shape ->
#: the :data:`DRIFTS` metric they split.
DRIFT_PARTS = {'ntk_scale_change': 'ntk_drift',
               'ntk_scale_change_centered': 'ntk_drift_centered',
               'ntk_shape_change': 'ntk_drift',
               'ntk_shape_change_centered': 'ntk_drift_centered'}


#: Numeric keys the change is drawn against when a model ran at 3 or more of
#: their values: key -> x-axis label.
DRIFT_SWEEPS = {
    'alpha': r'residual-branch scale $\alpha$',
    'center_scale': r'centring $c$ (the centred net is $f - c f_0$)'}


def _drift_predictors(metric: str) -> tuple[str]:
    """The predictor whose divergence drops a drift (or drift part) row."""
    return (DRIFTS[DRIFT_PARTS.get(metric, metric)][0],)


def plot_ntk_drift(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Relative NTK change at the last step against width, log-log; with
    centred networks (``experiment.centered``) a second panel for theirs
    (dashed), y shared, each line in the same colour in both. Then the
    change against each swept key of :data:`DRIFT_SWEEPS`
    (:func:`plot_ntk_drift_against`; also from runs at one width)."""
    frame = plain_rows(frame)
    diverged = diverged_runs(frame)
    everything, dropped = split_diverged(drift_tables.drift_rows(frame), diverged,
                                          _drift_predictors)
    paths = _plot_ntk_drift_widths(everything, dropped, diverged, out_dir, name)
    for key in DRIFT_SWEEPS:
        paths += plot_ntk_drift_against(everything, out_dir, name, key,
                                        losses=frame)
    return paths


def _plot_ntk_drift_widths(everything: pd.DataFrame, dropped: pd.DataFrame,
                           diverged: set[tuple], out_dir: Path,
                           name: str) -> list[Path]:
    """:func:`plot_ntk_drift`'s figure against the width (2 or more)."""
    dropped = dropped[dropped['metric'].isin(list(DRIFTS))]
    rows = everything[everything['metric'].isin(list(DRIFTS))]
    if rows.empty or rows['width'].nunique() < 2:
        return []
    plt = figures.pyplot()
    metrics = [m for m in DRIFTS if (rows['metric'] == m).any()]
    columns = line_columns(rows)
    keys = list(rows.groupby(columns, dropna=False).groups)
    colours = {line_key(key): (plt.get_cmap('tab20')(i % 20) if len(keys) > 10
                               else f'C{i % 10}') for i, key in enumerate(keys)}
    fig, axes = plt.subplots(1, len(metrics), squeeze=False, sharey=True,
                             figsize=(5.5 * len(metrics), 4))
    fits = []
    for ax, metric in zip(axes[0], metrics):
        _, prefix, style = DRIFTS[metric]
        part = rows[rows['metric'] == metric]
        fits += [{'metric': metric, **fit} for fit in loglog_by_model(
            ax, part, prefix, style, columns, colours)]
        w = np.array(sorted(part['width'].unique()), float)
        # The guides go through a measured point: the highest curve's widest
        # width (the mean over models lay on no curve).
        widest = part[part['width'] == w[-1]]
        anchor = widest.groupby(columns, dropna=False)['value'].mean().max()
        ax.plot(w, anchor * (w / w[-1]) ** -0.5, 'k--', lw=1,
                label=r'$\propto n^{-1/2}$')
        ax.plot(w, anchor * (w / w[-1]) ** -1.0, '-.', color='gray', lw=1,
                label=r'$\propto n^{-1}$')
        ax.plot([], [], ':', color='gray', lw=1, label='least-squares fits')
        ax.set_xlabel('width $n$')
        if len(metrics) > 1:
            ax.set_title('centred networks' if prefix else 'networks',
                         fontsize=10)
        place_legend(ax, len(keys), below=len(metrics) > 1)
    axes[0, 0].set_ylabel(r'$\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$')
    steps = step_range(rows)
    title = ('relative change of the empirical NTK' + (
        '' if steps is None else f' after {steps[0]:g} steps' if steps[0] == steps[1]
        else f" at each run's last step ({steps[0]:g}-{steps[1]:g})"))
    if len(metrics) > 1:
        fig.suptitle(title)
    else:
        axes[0, 0].set_title(title)
    note_diverged(axes[0, -1], dropped, diverged, _drift_predictors)
    return save_with_slopes(fig, out_dir, f'{name}_ntk_drift', fits)


def drift_against(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean, std and seed count of the last step's NTK change (each metric of
    :data:`DRIFTS` and :data:`DRIFT_PARTS`) per model, width and value of
    ``key`` (one of :data:`DRIFT_SWEEPS`: the ResNet's ``model.alpha``, the
    centred net's ``experiment.center_scale``), one row each; empty unless
    some model was run at 3 or more values of ``key``."""
    if key not in rows.columns:
        return pd.DataFrame()
    rows = drift_tables.drift_rows(rows)
    rows = rows[rows[key].notna()]
    swept = [m for m, part in rows.groupby('model') if part[key].nunique() >= 3]
    rows = rows[rows['model'].isin(swept)]
    if rows.empty:
        return pd.DataFrame()
    keys = (['metric', 'model']
            + [c for c in line_columns(rows, without=(key,)) if c != 'model']
            + ['width', key])
    stats = (rows.groupby(keys, dropna=False)['value']
             .agg(['mean', 'std', 'count']).reset_index())
    return stats.rename(columns={'count': 'seeds'})


def plot_ntk_drift_against(rows: pd.DataFrame, out_dir: Path, name: str,
                           key: str, losses: pd.DataFrame | None = None
                           ) -> list[Path]:
    """The NTK change at the last step against ``key`` (:data:`DRIFT_SWEEPS`),
    one line per width, one column of panels per setting of the other swept
    keys (e.g. ``normalize``); drawn when a model ran at 3 or more values of
    ``key``, the means (also of the shape change) in
    ``<name>_ntk_drift_<key>.csv``.

    The panel rows: the network's change and the centred network's (log y,
    shared), then, where the runs split them, the signed change of each one's
    scale (symmetric-log y, linear within 0.01, shared): ``a`` in
    ``Theta_t - Theta_0 = a Theta_0 + E``
    (:func:`ntkexp.ntk_drift.scale_and_shape_change`).

    Against the ResNet's ``alpha`` (``x_l = x_{l-1} + alpha V_l act(W_l
    x_{l-1})``): at ``alpha = 0`` the ResNet is the two-layer linear net
    ``v^T V_0 x``, the floor the residual branches add to. Against the
    centring ``c``: training ``f - c f_0`` on ``y`` starts from the residual
    ``(1 - c) f_0 - y``, so the scale change shows what undoing ``f_0`` and
    fitting ``y`` each do to the kernel (``results/resnet-ntk-alpha/``);
    ``losses``: the rows
    :func:`ntkexp.plots.drift_tables.centering_fit` reads ``f_0``'s size from
    (default ``rows``); its fits go to
    ``<name>_ntk_scale_centering_terms.csv`` (statistics over seeds) and
    ``<name>_ntk_scale_centering_seeds.csv`` (each seed's).
    """
    stats = drift_against(rows, key)
    if stats.empty:
        return []
    panels = [c for c in stats.columns if c not in (
        'metric', 'width', key, 'mean', 'std', 'seeds')]
    present = set(stats['metric'])
    drifts = [m for m in DRIFTS if m in present]
    scales = [m for m in DRIFT_PARTS if m.startswith('ntk_scale') and m in present]
    metrics = drifts + scales
    columns = list(stats.groupby(panels, dropna=False).groups)
    plt = figures.pyplot()
    fig, axes = plt.subplots(len(metrics), len(columns), squeeze=False,
                             sharex=True, figsize=(1.0 + 3.6 * len(columns),
                                                   0.6 + 2.9 * len(metrics)))
    for i, metric in enumerate(metrics):  # y shared within drifts, scales
        anchor = axes[0 if metric in DRIFTS else len(drifts), 0]
        for ax in axes[i]:
            if ax is not anchor:
                ax.sharey(anchor)
    widths = sorted(stats['width'].unique())
    colours = {w: f'C{i % 10}' for i, w in enumerate(widths)}
    for i, metric in enumerate(metrics):
        parts = {line_key(k): part for k, part in
                 stats[stats['metric'] == metric].groupby(panels, dropna=False)}
        drift = DRIFT_PARTS.get(metric, metric)
        for j, column in enumerate(columns):
            ax = axes[i, j]
            part = parts.get(line_key(column), stats.iloc[:0])
            for width, line in part.groupby('width'):
                line = line.sort_values(key)
                ax.errorbar(line[key], line['mean'],
                            yerr=line['std'].fillna(0), fmt='o-', ms=3,
                            capsize=2, color=colours[width],
                            label=f'n={figures.value_text(width)}')
            if metric in DRIFTS:
                ax.set_yscale('log')
            else:  # signed: linear within +-0.01, logarithmic beyond
                ax.set_yscale('symlog', linthresh=0.01)
                ax.axhline(0.0, color='gray', lw=0.8)
            what = DRIFTS[drift][1] or 'network '
            ax.set_title(what + model_label(stats, column, panels), fontsize=9)
            if i == len(metrics) - 1:
                ax.set_xlabel(DRIFT_SWEEPS[key])
            if j == 0:
                ax.set_ylabel(r'$\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$'
                              if metric in DRIFTS else
                              r'scale change $a$: $\Theta_t - \Theta_0 = a \Theta_0 + E$')
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc='upper left',
               bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(f'relative change of the empirical NTK against {key}')
    fig.tight_layout()
    table = out_dir / f'{name}_ntk_drift_{key}.csv'
    paths = save_figure(fig, out_dir, f'{name}_ntk_drift_{key}')
    stats.to_csv(table, index=False)
    paths.append(table)
    if key == 'center_scale':
        seeds = drift_tables.centering_fit(rows, losses, per_seed=True)
        if not seeds.empty:
            for table, what in ((drift_tables.summarise_seed_fits(seeds), 'terms'),
                                (seeds, 'seeds')):
                paths.append(out_dir / f'{name}_ntk_scale_centering_{what}.csv')
                table.to_csv(paths[-1], index=False)
    return paths


def plot_ntk_layers(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Where the NTK's change comes from, leaf by leaf (``experiment.ntk_layers``),
    each line at its widest width: top, each parameter leaf's share of ``Theta_0``;
    below, its part of the kernel's scale change ``a`` after training, for
    the network and the centred network; one column per line. Means over
    seeds; all widths in ``<name>_ntk_layers.csv``, and summed over the
    input layer, hidden layers (or residual branches) and readout in
    ``<name>_ntk_layer_groups.csv``
    (:func:`ntkexp.plots.drift_tables.ntk_layer_group_table`). Runs
    that swept the centring are drawn at ``c = 1``
    (:func:`plot_ntk_layer_centering` draws the sweep)."""
    rows = drift_tables.layer_rows(plain_rows(frame))
    stats = drift_tables.leaf_stats(rows)
    if stats.empty:
        return []
    columns = line_columns(stats)
    widest = _at_widest(stats, columns)
    lines = list(widest.groupby(columns, dropna=False))
    plt = figures.pyplot()
    fig, axes = plt.subplots(2, len(lines), squeeze=False, sharex='col',
                             figsize=(1.0 + 3.8 * len(lines), 5.6))
    for j, (key, part) in enumerate(lines):
        share = part[part['metric'] == 'ntk_layer_share'].sort_values('layer')
        axes[0, j].bar(share['layer'], share['mean'], color='0.6')
        axes[0, j].set_title(_width_label(widest, key, columns, part), fontsize=9)
        ax = axes[1, j]
        for metric, (label, style) in drift_tables.LAYER_METRICS.items():
            line = part[part['metric'] == metric].sort_values('layer')
            if not line.empty:
                ax.errorbar(line['layer'], line['mean'],
                            yerr=line['std'].fillna(0), fmt=style, ms=3,
                            capsize=2, label=label)
        ax.axhline(0.0, color='gray', lw=0.8)
        ax.set_xticks(share['layer'])
        ax.set_xticklabels(share['layer_shape'], rotation=90, fontsize=7)
        ax.set_xlabel('parameter leaf')
        if j == 0:
            axes[0, j].set_ylabel(r'share of $\Theta_0$')
            ax.set_ylabel(r'its part of the scale change $a$')
            ax.legend(fontsize=7)
    fig.suptitle('the empirical NTK by parameter leaf, each net at its widest width')
    fig.tight_layout()
    table = out_dir / f'{name}_ntk_layers.csv'
    groups = out_dir / f'{name}_ntk_layer_groups.csv'
    paths = save_figure(fig, out_dir, f'{name}_ntk_layers')
    stats.to_csv(table, index=False)
    drift_tables.group_stats(rows).to_csv(groups, index=False)
    return paths + [table, groups]


def _at_widest(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of ``table`` at each line's (``columns``) widest width."""
    widest = table.groupby(columns, dropna=False)['width'].transform('max')
    return table[table['width'] == widest]


def _width_label(table: pd.DataFrame, key, columns: list[str],
                 part: pd.DataFrame) -> str:
    """:func:`model_label` of a line and the width of its rows ``part``."""
    return (f'{model_label(table, key, columns)}, '
            f'n={figures.value_text(part["width"].iloc[0])}')


#: :class:`ntkexp.ntk_drift.CenteringTerms` drawn by
#: :func:`plot_ntk_layer_centering` -> legend label and colour.
CENTERING_TERMS = {'from_y': (r'from_y: fit $y$ ($c = 1$)', 'tab:blue'),
                   'from_f0': (r'from_f0: undo $f_0$, first order', 'tab:red'),
                   'from_f0_squared': (r'from_f0_squared: second order', 'tab:orange')}


def plot_ntk_layer_centering(frame: pd.DataFrame, out_dir: Path,
                             name: str) -> list[Path]:
    """Where fitting ``y`` and undoing ``f_0`` each change the NTK: with
    ``experiment.ntk_layers`` runs at 3 or more centrings, the terms of
    :func:`ntkexp.plots.drift_tables.layer_centering_fit` per part of the net
    (input layer, hidden layers or residual branches, readout, all) at each line's widest width,
    one panel per line; bars: mean over seeds (std as error bars); black dots:
    their sum, the plain net's part (``c = 0``). Writes
    ``<name>_ntk_layer_groups_centering.png`` and, every width,
    ``<name>_ntk_layer_groups_centering_terms.csv`` (each seed's fit in
    ``..._centering_seeds.csv``) and per leaf
    ``<name>_ntk_layers_centering_terms.csv``."""
    leaf_seeds, group_seeds = drift_tables.layer_centering_fit(plain_rows(frame),
                                                               per_seed=True)
    if group_seeds.empty:
        return []
    leaves = drift_tables.summarise_seed_fits(leaf_seeds)
    groups = drift_tables.in_group_order(drift_tables.summarise_seed_fits(group_seeds))
    columns = [c for c in groups.columns[:groups.columns.get_loc('width')]]
    widest = _at_widest(groups, columns)
    lines = list(widest.groupby(columns, dropna=False, sort=False))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(lines), squeeze=False, sharey=True,
                             figsize=(1.0 + 3.6 * len(lines), 3.8))
    width = 0.8 / len(CENTERING_TERMS)
    for ax, (key, part) in zip(axes[0], lines):
        x = np.arange(len(part))
        for k, (term, (label, colour)) in enumerate(CENTERING_TERMS.items()):
            ax.bar(x + (k - (len(CENTERING_TERMS) - 1) / 2) * width, part[term], width,
                   yerr=part[f'{term}_std'].fillna(0), capsize=2,
                   color=colour, label=label)
        plain = part[list(CENTERING_TERMS)].sum(axis=1)
        ax.plot(x, plain, 'ko', ms=4, label='sum: the net ($c = 0$)')
        ax.axhline(0.0, color='gray', lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(part['group'])
        ax.set_title(_width_label(widest, key, columns, part), fontsize=9)
    axes[0, 0].set_ylabel(r'part of the scale change $a(c)$')
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(r'$a(c)$ = from_y + from_f0 $(1 - c)$ + from_f0_squared '
                 '$(1 - c)^2$ by part of the net, each at its widest width')
    fig.tight_layout()
    paths = save_figure(fig, out_dir, f'{name}_ntk_layer_groups_centering')
    for table, what in ((groups, 'layer_groups_centering_terms'),
                        (group_seeds, 'layer_groups_centering_seeds'),
                        (leaves, 'layers_centering_terms')):
        paths.append(out_dir / f'{name}_ntk_{what}.csv')
        table.to_csv(paths[-1], index=False)
    return paths


#: The residuals of ``plot_nth``, with their legend labels.
NTH_RESIDUALS = {
    'nth_residual': r'NTH to $K^{(3)}$, linearised path',
    'nth2_residual': r'NTH to $K^{(4)}$, second-order path',
    'taylor1_residual': r'$D\Theta[\delta]$',
    'taylor2_residual': r'$D\Theta[\delta] + D^2\Theta[\delta,\delta]/2$'}


def nth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and median over seeds of the ``nth`` rows, per line, width
    and step (the residuals' spread over seeds is wide and skewed: a few
    seeds far above the rest move the mean, not the median)."""
    metrics = list(NTH_RESIDUALS) + ['nth_drift', 'nth2_drift', 'nth_cosine',
                                     'ntk_drift']
    rows = frame[frame['metric'].isin(metrics) & (frame['step'] > 0)]
    keys = line_columns(rows) + ['width', 'step', 'metric']
    table = rows.groupby(keys, dropna=False)['value'].agg(
        ['mean', 'std', 'median', 'count']).reset_index()
    return table


def plot_nth(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """The NTK's change against the hierarchy's prediction, vs width.

    One column per line (model, activation, ...): on top the residual of each
    prediction at the last step, below the actual change and the hierarchy's
    ``K^(3)`` term; log-log, mean +- std over seeds, fitted slopes.
    """
    frame = plain_rows(frame)
    if metric_rows(frame, 'taylor2_residual').empty:
        return []
    last = last_step(frame[frame['metric'].isin(
        list(NTH_RESIDUALS) + ['nth_drift', 'nth2_drift', 'ntk_drift'])
        & (frame['step'] > 0)])
    if last['width'].nunique() < 2:
        return []
    columns = line_columns(last)
    groups = list(last.groupby(columns, dropna=False))
    plt = figures.pyplot()
    fig, axes = plt.subplots(2, len(groups), figsize=(4.6 * len(groups), 7),
                             squeeze=False, sharex=True)
    fits = []
    drift_labels = {'ntk_drift': 'actual', 'nth_drift': r'NTH $K^{(3)}$ term',
                    'nth2_drift': r'NTH to $K^{(4)}$'}
    for (key, rows), top, bottom in zip(groups, axes[0], axes[1]):
        # The slopes CSV names the whole line (e.g. the activation too).
        line = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        for metric, style in zip(list(NTH_RESIDUALS) + list(drift_labels),
                                 ('o--C0', 'D-C3', 's:C1', 'o-C2', 'o-k',
                                  'o--C0', 'D-C3')):
            ax = bottom if metric in drift_labels else top
            label = NTH_RESIDUALS.get(metric, drift_labels.get(metric))
            for fit in loglog_by_model(ax, metric_rows(rows, metric), f'{label}; ',
                                       style):
                fits.append({'metric': metric, **line, **fit})
        top.set_title(model_label(last, key, columns), fontsize=9)
        top.legend(fontsize=6, framealpha=0.6)
        bottom.legend(fontsize=6, framealpha=0.6)
        bottom.set_xlabel('width $n$')
    # The axes share x: ticks at every width of any line (lines may stop
    # at different widths).
    widths = sorted(last['width'].unique())
    for bottom in axes[1]:
        bottom.set_xticks(widths, [f'{w:g}' for w in widths])
        bottom.set_xticks([], minor=True)
    axes[0][0].set_ylabel(r'residual $\|\Theta_t-\Theta_0-P\|_F\,/\,'
                          r'\|\Theta_t-\Theta_0\|_F$')
    steps = step_range(last)
    axes[1][0].set_ylabel(r'$\|\cdot\|_F / \|\Theta_0\|_F$ after ' + (
        f'{steps[1]:g} steps' if steps[0] == steps[1]
        else f"each run's last step ({steps[0]:g}-{steps[1]:g})"))
    fig.tight_layout()
    paths = save_with_slopes(fig, out_dir, f'{name}_nth', fits)
    table = out_dir / f'{name}_nth.csv'
    nth_table(frame).to_csv(table, index=False, float_format='%.6g')
    return paths + [table]
