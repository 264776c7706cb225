"""Lee et al. 2020: test accuracy of finite networks against the NNGP / NTK
kernels (Fig. 1), of their ensembles (Sec. 3.3), under L2 and large
learning rates (Sec. 3), against the width and the depth.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots.finite_width.common import (
    CHANCE, MODEL_LABELS, PREDICTOR_LABELS, PREDICTOR_STYLE, best_and_final, converged_rows,
    diverged_runs, metric_rows, model_label, plain_rows, save_figure, split_diverged)
from ntkexp.plots.rows import last_step, line_columns


#: Predictors of the finite-vs-kernel bars: tick label, hatch, CSV name.
_BAR_PREDICTORS = {
    'net': ('net', '', 'net'),
    'net_centered': ('centred', '//', 'net, centred f_t - f_0'),
    'ntk': ('NTK dyn.', '..', 'NTK dynamics, same f_0'),
    'ntk_mean': ('NTK dyn.\n$f_0=0$', 'xx', 'NTK dynamics, f_0 = 0'),
    'net_ensemble': ('ens.', '\\\\', 'ensemble of nets'),
    'net_centered_ensemble': ('centred\nens.', 'oo', 'ensemble of centred nets'),
}


def _l2_settings(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each row's ``experiment.l2`` and ``l2_center``, with the config
    defaults (0, ``zero``) where a run did not set them."""
    l2 = pd.to_numeric(rows['l2'], errors='coerce').fillna(0.0)
    center = (rows['l2_center'] if 'l2_center' in rows.columns
              else pd.Series('zero', index=rows.index)).fillna('zero')
    return l2, center


def _with_l2_label(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with an ``l2_label`` column (``L2 0.01 to init``, ``no L2``)
    when runs with different ``experiment.l2`` settings are drawn together."""
    if 'l2' not in rows.columns:
        return rows
    l2, center = _l2_settings(rows)
    labels = [('no L2' if value == 0 else
               f"L2 {value:g}{' to init' if where == 'init' else ''}")
              for value, where in zip(l2, center)]
    if len(set(labels)) < 2:
        return rows
    # Sorted by centre, then strength (no L2 first).
    order = [(0, 0.0) if value == 0 else (1 + (where == 'init'), value)
             for value, where in zip(l2, center)]
    return rows.assign(l2_label=labels, l2_order=order)


def _largest_ensembles(frame: pd.DataFrame) -> pd.DataFrame:
    """``ensemble_test_accuracy`` rows of each run's largest ensemble, as
    predictors ``net_ensemble`` / ``net_centered_ensemble`` (Lee et al. 2020,
    Fig. 1's "+Ens" bars)."""
    ens = metric_rows(frame, 'ensemble_test_accuracy')
    if ens.empty or 'ensemble_size' not in ens.columns:
        return ens.iloc[:0]
    keys = [c for c in ('run_dir', 'model', 'parameterization', 'width')
            if c in ens.columns]
    top = ens.groupby(keys, dropna=False)['ensemble_size'].transform('max')
    ens = ens[ens['ensemble_size'] == top].copy()
    ens['predictor'] = ens['predictor'].astype(str) + '_ensemble'
    return ens


def _depth_sweep(rows: pd.DataFrame) -> bool:
    """Whether one model's rows hold several depths (a depth study)."""
    return ('depth' in rows.columns and 'model' in rows.columns
            and bool((rows.groupby('model')['depth'].nunique() > 1).any()))


def plot_finite_vs_kernel(frame: pd.DataFrame, out_dir: Path,
                          name: str) -> list[Path]:
    """Lee et al. 2020, Fig. 1: best finite-net accuracy vs kernel accuracy.

    Also writes ``<experiment>_finite_vs_kernel.csv``: per model,
    parameterisation and width the best test accuracy over training (mean
    over seeds) and the final one, and the NNGP / NTK accuracies.
    """
    frame = plain_rows(frame)
    kernel = metric_rows(frame, 'kernel_test_accuracy')
    net = metric_rows(frame, 'test_accuracy')
    if kernel.empty or net.empty or _depth_sweep(net):
        return []  # a depth sweep: plot_depth_accuracy (one bar per depth would not fit)
    best = _best_accuracies(frame, net)
    kkeys = [c for c in ('model', 'parameterization', 'kernel')
             if c in kernel.columns]
    kstats = kernel.groupby(kkeys, dropna=False)['value'].mean().reset_index()
    plt = figures.pyplot()
    models = sorted(best['model'].unique())
    n_bars = len(best) + 2 * len(models)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * n_bars), 4))
    bars = _Bars()
    for model in models:
        _network_bars(bars, model, best[best['model'] == model])
        _kernel_bars(bars, model, kstats[kstats['model'] == model])
    values, errors = bars.values, bars.errors
    x = np.arange(len(values))
    # Error bars (std over seeds) only where there are several seeds.
    ax.bar(x, values, yerr=None if np.all(np.isnan(errors)) else errors,
           color=bars.colors, capsize=3, hatch=bars.hatches)
    ax.set_xticks(x)
    ax.set_xticklabels(bars.labels, fontsize=7)
    ax.set_ylabel('test accuracy')
    # From 0, so that bar lengths compare; guessing marked where known.
    ax.set_ylim(0.0, min(1.0, np.nanmax(values) + 0.05))
    datasets = set(frame['dataset'].dropna()) if 'dataset' in frame else set()
    if len(datasets) == 1 and next(iter(datasets)) in CHANCE:
        chance = CHANCE[next(iter(datasets))]
        ax.axhline(chance, color='k', lw=0.8, ls='--')
        ax.annotate('chance', (x[-1] + 0.4, chance), fontsize=7, va='bottom',
                    ha='right')
    ax.set_title('best test accuracy over training: finite nets and their NTK '
                 'dynamics (blue NTK, orange standard param.)\nvs NNGP (green) / '
                 'NTK (red) kernel regression at $t = \\infty$', fontsize=8)
    paths = save_figure(fig, out_dir, f'{name}_finite_vs_kernel')
    path = out_dir / f'{name}_finite_vs_kernel.csv'
    pd.DataFrame(bars.table).to_csv(path, index=False)
    return paths + [path]


def _best_accuracies(frame: pd.DataFrame, net: pd.DataFrame) -> pd.DataFrame:
    """Per model, parameterisation, width and predictor (and ensemble size,
    L2 setting): the best test accuracy over training, its mean and std
    over seeds, and the final one (``net``: the ``test_accuracy`` rows)."""
    net = pd.concat([net, _largest_ensembles(frame)], ignore_index=True)
    net = net[net['predictor'].isin(list(_BAR_PREDICTORS))]
    net = _with_l2_label(net)
    keys = [c for c in ('model', 'parameterization', 'width', 'predictor',
                        'ensemble_size', 'l2_label', 'l2_order')
            if c in net.columns]
    per_seed = net.groupby(keys + ['seed'], dropna=False)
    best = (per_seed['value'].max().groupby(keys, dropna=False)
            .agg(['mean', 'std']).reset_index())
    final = (last_step(net).groupby(keys, dropna=False)['value'].mean()
             .rename('final').reset_index())
    return best.merge(final, on=keys, how='left')


@dataclasses.dataclass
class _Bars:
    """The bars of :func:`plot_finite_vs_kernel`, in order, and its table."""
    labels: list = dataclasses.field(default_factory=list)
    values: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)
    colors: list = dataclasses.field(default_factory=list)
    hatches: list = dataclasses.field(default_factory=list)
    table: list = dataclasses.field(default_factory=list)

    def add(self, label: str, value: float, error: float, color: str,
            hatch: str, row: dict) -> None:
        self.labels.append(label)
        self.values.append(value)
        self.errors.append(error)
        self.colors.append(color)
        self.hatches.append(hatch)
        self.table.append(row)


def _network_bars(bars: _Bars, model: str, mb: pd.DataFrame) -> None:
    """One bar per parameterisation, predictor (network, NTK dynamics,
    ensemble) and L2 setting of ``model`` (its rows of the best accuracies)."""
    mb = mb.assign(_order=mb['predictor'].map(
        {p: i for i, p in enumerate(_BAR_PREDICTORS)}))
    order = [c for c in ('parameterization', '_order', 'l2_order')
             if c in mb.columns]
    for _, r in mb.sort_values(order).iterrows():
        par = r.get('parameterization', '')
        predictor = r.get('predictor', 'net')
        short, hatch, long = _BAR_PREDICTORS[predictor]
        size = r.get('ensemble_size', np.nan)
        if pd.notna(size):
            short, long = f'{short}\nK={int(size)}', f'{long} (K={int(size)})'
        if r.get('l2_label'):
            short = f"{short}\n" + r['l2_label'].replace(' to init', '\nto init')
            long = f"{long}, {r['l2_label']}"
        bars.add(f"{MODEL_LABELS.get(model, model)}\n{par}\n"
                 f"n={int(r['width'])}\n{short}", r['mean'],
                 np.nan if pd.isna(r['std']) else r['std'],
                 'tab:blue' if par == 'ntk' else 'tab:orange', hatch,
                 dict(model=model, predictor=f'{long} ({par} param.)',
                      width=int(r['width']), best_accuracy=r['mean'],
                      final_accuracy=r['final']))


def _kernel_bars(bars: _Bars, model: str, mk: pd.DataFrame) -> None:
    """The NNGP and NTK kernel regression bars of ``model`` at ``t = inf``
    (the NTK parameterisation's where both were run)."""
    for kern in ('nngp', 'ntk'):
        part = mk[mk['kernel'] == kern] if 'kernel' in mk.columns else mk
        if part.empty:
            continue
        if 'parameterization' in part.columns:
            part = part[part['parameterization'] == 'ntk'] if (
                part['parameterization'] == 'ntk').any() else part
        bars.add(f'{MODEL_LABELS.get(model, model)}\n{kern.upper()}\n'
                 r'$t=\infty$', part['value'].mean(), np.nan,
                 'tab:green' if kern == 'nngp' else 'tab:red', '',
                 dict(model=model, predictor=kern.upper(), width=None,
                      best_accuracy=None, final_accuracy=part['value'].mean()))


def plot_ensemble(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Lee et al. 2020, Sec. 3.3: ensembles of networks against their size.

    Left: the ensemble's test accuracy (or test loss without labels) at the
    last step against the ensemble size ``K``, one line per model, width and
    predictor (network solid, centred network dashed), with the NTK dynamics
    from ``f_0 = 0`` at the same step (dash-dotted; the infinite ensemble at
    infinite width) and NNGP / NTK kernel regression at ``t = inf`` (dotted)
    when the rows have them. Right: the ensemble's RMS distance on the test
    set to those dynamics against ``K``, log-log, with the ``1/sqrt(K)`` line
    of averaging independent initial functions through ``K = 1``.
    """
    frame = plain_rows(frame)
    metric = ('ensemble_test_accuracy'
              if not metric_rows(frame, 'ensemble_test_accuracy').empty
              else 'ensemble_test_loss')
    rows = last_step(metric_rows(frame, metric))
    if rows.empty or 'ensemble_size' not in rows.columns:
        return []
    plain = metric.replace('ensemble_', '')
    dist = last_step(metric_rows(frame, 'ensemble_dist_ntk_mean'))
    if 'split' in dist.columns:
        dist = dist[dist['split'] == 'test']
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 2 if not dist.empty else 1,
                             figsize=(10 if not dist.empty else 5.5, 4.8),
                             squeeze=False)
    lines = line_columns(rows) + ['width']
    colors: dict = {}
    table = _ensemble_panel(axes[0][0], frame, rows, plain, lines, colors)
    if not dist.empty:
        table += _ensemble_distance_panel(axes[0][1], dist, lines, colors)
    fig.tight_layout()
    paths = save_figure(fig, out_dir, f'{name}_ensemble')
    path = out_dir / f'{name}_ensemble.csv'
    table = pd.DataFrame(table)
    for column in ('width', 'ensemble_size'):  # integers beside empty cells
        if column in table.columns:
            table[column] = table[column].astype('Int64')
    table.to_csv(path, index=False)
    return paths + [path]


def _ensemble_panel(ax, frame: pd.DataFrame, rows: pd.DataFrame, plain: str,
                    lines: list[str], colors: dict) -> list[dict]:
    """:func:`plot_ensemble`'s left panel: the ensembles' ``plain`` metric
    against ``K``, the infinite ensemble and the kernels; its table rows.
    ``colors`` (a line's key -> colour) is filled for the right panel."""
    table = []
    for key, group in rows.groupby(lines + ['predictor'], dropna=False):
        predictor = key[-1]
        stats = group.groupby('ensemble_size')['value'].mean().sort_index()
        label = (model_label(rows, key[:-2]) + f', n={int(key[-2])}, ' +
                 PREDICTOR_LABELS.get(predictor, predictor))
        color = colors.setdefault(key[:-1], f'C{len(colors)}')
        ax.plot(stats.index, stats.values, '--' if predictor == 'net_centered'
                else '-', marker='o', ms=3, color=color, label=label)
        for size, value in stats.items():
            table.append(dict(_key_dict(lines, key[:-1]), predictor=predictor,
                              ensemble_size=int(size), metric=plain,
                              value=value))
    table += _infinite_ensemble_lines(ax, frame, plain, lines, colors)
    for kern, value in _kernel_lines([ax], metric_rows(frame, 'kernel_' + plain),
                                     style=':').items():
        table.append(dict(predictor=kern, metric='kernel_' + plain, value=value))
    _ensemble_axis(ax, rows)
    ax.set_xlabel('ensemble size $K$ (networks from independent inits)')
    ax.set_ylabel(plain.replace('_', ' ') + ' of the mean output')
    steps = sorted(rows['step'].dropna().unique()) if 'step' in rows else []
    ax.set_title('ensembles at the last step' + (
        f' ({int(steps[0])})' if len(steps) == 1 else ''), fontsize=9)
    ax.legend(fontsize=6, loc='upper left', bbox_to_anchor=(0.0, -0.16),
              ncol=2)
    return table


def _infinite_ensemble_lines(ax, frame: pd.DataFrame, plain: str,
                             lines: list[str], colors: dict) -> list[dict]:
    """The infinite ensemble at infinite width: the NTK dynamics from
    ``f_0 = 0`` at the same step (its rows are per seed, all equal at one
    lr). One line when every model and width shares it (NTK
    parameterisation: the dynamics do not depend on the width), else one
    per line's colour. Returns its table rows."""
    limit = last_step(metric_rows(frame, plain))
    limit = (limit[limit['predictor'] == 'ntk_mean']
             if 'predictor' in limit.columns else limit.iloc[:0])
    if limit.empty:
        return []
    keys = [c for c in lines if c in limit.columns]
    values = limit.groupby(keys, dropna=False)['value'].mean()
    label = PREDICTOR_LABELS['ntk_mean'] + ' (same $t$)'
    if np.ptp(values.to_numpy()) <= 1e-9 * max(1.0, abs(values.iloc[0])):
        ax.axhline(values.iloc[0], color='k', ls='-.', lw=1, label=label)
        return [dict(predictor='ntk_mean', metric=plain, value=values.iloc[0])]
    table = []
    for key, value in values.items():
        key = key if isinstance(key, tuple) else (key,)
        ax.axhline(value, color=colors.get(key, 'k'), ls='-.', lw=1,
                   label=label)
        label = None
        table.append(dict(_key_dict(keys, key), predictor='ntk_mean',
                          metric=plain, value=value))
    return table


def _ensemble_distance_panel(ax, dist: pd.DataFrame, lines: list[str],
                             colors: dict) -> list[dict]:
    """:func:`plot_ensemble`'s right panel: the RMS distance to the NTK
    dynamics from ``f_0 = 0`` against ``K``, with ``1/sqrt(K)`` from
    ``K = 1``; its table rows."""
    table = []
    for key, group in dist.groupby(lines + ['predictor'], dropna=False):
        predictor = key[-1]
        stats = group.groupby('ensemble_size')['value'].mean().sort_index()
        color = colors.setdefault(key[:-1], f'C{len(colors)}')
        ax.plot(stats.index, stats.values, '--' if predictor == 'net_centered'
                else '-', marker='o', ms=3, color=color)
        if 1 in stats.index:
            ax.plot(stats.index, stats.loc[1] / np.sqrt(stats.index), ':',
                    color=color, lw=0.8)
        for size, value in stats.items():
            table.append(dict(_key_dict(lines, key[:-1]),
                              predictor=predictor, ensemble_size=int(size),
                              metric='dist_ntk_mean', value=value))
    _ensemble_axis(ax, dist)
    ax.set_yscale('log')
    ax.set_xlabel('ensemble size $K$')
    ax.set_ylabel('RMS distance to NTK dynamics from $f_0=0$ (test)')
    ax.set_title('dotted: $1/\\sqrt{K}$ from $K=1$', fontsize=9)
    return table


def _key_dict(columns: list[str], key: tuple) -> dict:
    """A line's key as ``{column: value}``, widths as integers."""
    out = dict(zip(columns, key))
    if 'width' in out and pd.notna(out['width']):
        out['width'] = int(out['width'])
    return out


def _ensemble_axis(ax, rows: pd.DataFrame) -> None:
    """Log2 x axis ticked at the ensemble sizes themselves (1, 2, 4, ...)."""
    sizes = sorted(int(k) for k in rows['ensemble_size'].dropna().unique())
    ax.set_xscale('log', base=2)
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.minorticks_off()


def plot_l2(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Lee et al. 2020, Sec. 3: test accuracy against the L2 strength.

    Left against ``l2`` (symmetric-log axis: ``0`` is no L2), right against
    the decay exponent ``l2 * t`` at the last step; best accuracy over
    training (mean +- std over seeds) solid, final accuracy dotted; NNGP /
    NTK kernel regression at ``t = inf`` as horizontal lines.
    """
    frame = plain_rows(frame)
    rows = metric_rows(frame, 'test_accuracy')
    if rows.empty or 'l2' not in rows.columns:
        return []
    rows = rows[rows['predictor'].isin(['net', 'net_centered'])]
    l2, center = _l2_settings(rows)
    if l2.nunique() < 3:
        return []
    rows = rows.assign(l2=l2, **({'l2_center': center}
                                 if 'l2_center' in rows.columns else {}))
    lines = [c for c in ('model', 'parameterization', 'l2_center', 'predictor')
             if c in rows.columns and (c == 'model' or rows[c].nunique() > 1)]
    keys = lines + ['l2', 'run_dir', 'seed']
    runs = best_and_final(rows, keys)
    runs['t'] = last_step(rows).groupby(keys, dropna=False)['t'].max()
    runs = runs.reset_index()
    runs['decay'] = runs['l2'] * runs['t']
    stats = runs.groupby(lines + ['l2'], dropna=False).agg(
        best=('best', 'mean'), best_std=('best', 'std'),
        final=('final', 'mean'), decay=('decay', 'mean'),
        seeds=('best', 'size')).reset_index()
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for i, (key, part) in enumerate(stats.groupby(lines, dropna=False)):
        part = part.sort_values('l2')
        key = key if isinstance(key, tuple) else (key,)
        label = ', '.join(
            MODEL_LABELS.get(str(v), str(v)) if c == 'model' else
            (f'{v} param.' if c == 'parameterization' else
             (f'L2 to {"init" if v == "init" else "0"}' if c == 'l2_center'
              else PREDICTOR_LABELS.get(v, v)))
            for c, v in zip(lines, key))
        color = f'C{i}'
        for ax, x in ((axes[0], part['l2']), (axes[1], part['decay'])):
            ax.errorbar(x, part['best'], yerr=part['best_std'].fillna(0),
                        fmt='o-', ms=4, capsize=2, color=color,
                        label=label if ax is axes[0] else None)
            ax.plot(x, part['final'], ':', color=color, lw=1)
    _kernel_lines(axes, metric_rows(frame, 'kernel_test_accuracy'))
    for ax, column in ((axes[0], 'l2'), (axes[1], 'decay')):
        _zero_and_decades_axis(ax, stats[column])
    axes[0].set_xlabel('L2 coefficient $\\lambda$ (0: none)')
    axes[1].set_xlabel(r'decay exponent $\lambda t$ ($t$ = lr $\times$ steps)')
    axes[0].set_ylabel('test accuracy (best over training; dotted: final)')
    datasets = set(frame['dataset'].dropna()) if 'dataset' in frame else set()
    if len(datasets) == 1 and next(iter(datasets)) in CHANCE:
        for ax in axes:
            ax.axhline(CHANCE[next(iter(datasets))], color='k', lw=0.8, ls=':')
    axes[0].legend(fontsize=7, loc='upper left', bbox_to_anchor=(0.0, -0.16), ncol=2)
    fig.suptitle('L2 regularisation of finite networks vs the kernels', fontsize=9)
    fig.tight_layout()
    paths = save_figure(fig, out_dir, f'{name}_l2')
    path = out_dir / f'{name}_l2.csv'
    stats.to_csv(path, index=False)
    return paths + [path]


def _kernel_lines(axes, kernel: pd.DataFrame, style: str = '--') -> dict[str, float]:
    """NNGP / NTK kernel regression at ``t = inf`` (``kernel_test_*`` rows)
    as horizontal lines on each of ``axes`` (labelled on the first); the NTK
    parameterisation's kernels when rows of both are given. Returns the
    values drawn, by kernel."""
    if 'parameterization' in kernel.columns and (
            kernel['parameterization'] == 'ntk').any():
        kernel = kernel[kernel['parameterization'] == 'ntk']
    drawn = {}
    # Greys: the predictors' lines take the colour cycle (C2 green and C3 red
    # are the NTK dynamics', which the kernels' lines were hard to tell from).
    for kern, color in (('nngp', '0.55'), ('ntk', 'black')):
        part = (kernel[kernel['kernel'] == kern] if 'kernel' in kernel.columns
                else kernel.iloc[:0])
        if part.empty:
            continue
        drawn[kern] = float(part['value'].mean())
        for i, ax in enumerate(axes):
            ax.axhline(drawn[kern], color=color, ls=style, lw=1,
                       label=f'{kern.upper()} kernel, $t=\\infty$' if i == 0
                       else None)
    return drawn


def _zero_and_decades_axis(ax, values: pd.Series) -> None:
    """A symmetric-log x axis from 0 (linear up to the smallest positive
    value), ticked at 0 and at the powers of ten the values span."""
    positive = values[values > 0]
    if positive.empty:
        return
    low, high = float(positive.min()), float(positive.max())
    ax.set_xscale('symlog', linthresh=low)
    ax.set_xlim(-0.3 * low, high * 1.5)
    decades = 10.0 ** np.arange(np.floor(np.log10(low)),
                                np.ceil(np.log10(high)) + 1)
    ticks = [0.0] + [d for d in decades if low * 0.99 <= d <= high * 1.5]
    ax.set_xticks(ticks, ['0'] + [f'{d:g}' for d in ticks[1:]])
    ax.minorticks_off()


def plot_lr(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Large learning rates (Lee et al. 2020, Sec. 3; Lewkowycz et al. 2020).

    Against ``experiment.lr_fraction``: best / final test accuracy of the
    network (kernels at ``t = inf`` as lines), the NTK drift at the last step
    and the training loss peak over its step-0 value, one line per model and
    parameterisation; per seed, a network whose training diverged (its
    ``diverged_at_step`` row) is left out and counted in the CSV.
    """
    frame = plain_rows(frame)
    if 'lr_fraction' not in frame.columns:
        return []
    frame = frame[frame['lr_fraction'].notna()].copy()
    frame['lr_fraction'] = pd.to_numeric(frame['lr_fraction'], errors='coerce')
    accuracy = metric_rows(frame, 'test_accuracy')
    accuracy = accuracy[accuracy['predictor'] == 'net']
    if frame['lr_fraction'].nunique() < 3 or accuracy.empty:
        return []
    lines = line_columns(frame, without=('lr_fraction',))
    stats = _lr_stats(frame, accuracy, lines)
    fig = _lr_figure(frame, stats, lines)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    paths = save_figure(fig, out_dir, f'{name}_lr')
    path = out_dir / f'{name}_lr.csv'
    stats.to_csv(path, index=False)
    return paths + [path]


def _lr_stats(frame: pd.DataFrame, accuracy: pd.DataFrame,
              lines: list[str]) -> pd.DataFrame:
    """:func:`plot_lr`'s table: per line and ``lr_fraction``, the mean over
    the seeds that did not diverge of the best / final accuracy, NTK drift,
    distance to the NTK dynamics and loss peak, and the seeds that diverged."""
    keys = lines + ['lr_fraction', 'run_dir', 'width', 'seed']
    diverged = metric_rows(frame, 'diverged_at_step')
    diverged = diverged[diverged['predictor'] == 'net']
    bad = diverged_runs(frame)

    def per_seed(rows):
        """The rows of the runs and seeds whose network did not diverge."""
        return split_diverged(rows, bad, lambda _: ('net',))[0]

    runs = best_and_final(per_seed(accuracy), keys)
    drift = per_seed(last_step(metric_rows(frame, 'ntk_drift')))
    if not drift.empty:
        runs['ntk_drift'] = drift.groupby(keys, dropna=False)['value'].mean()
    dist = metric_rows(frame, 'dist_ntk')
    if 'split' in dist.columns:
        dist = dist[dist['split'] == 'test']
    dist = per_seed(last_step(dist))
    if not dist.empty:
        runs['dist_ntk'] = dist.groupby(keys, dropna=False)['value'].mean()
    loss = metric_rows(frame, 'train_loss')
    loss = per_seed(loss[loss['predictor'] == 'net'])
    if not loss.empty and loss['step'].nunique() >= 3:
        first = loss[loss['step'] == 0].groupby(keys, dropna=False)['value'].mean()
        runs['loss_peak'] = loss.groupby(keys, dropna=False)['value'].max() / first
    runs = runs.reset_index()
    stats = runs.groupby(lines + ['lr_fraction'], dropna=False).agg(
        **{c: (c, 'mean') for c in runs.columns if c in (
            'best', 'final', 'ntk_drift', 'dist_ntk', 'loss_peak')},
        best_std=('best', 'std'), seeds=('best', 'size')).reset_index()
    # Learning rates at which every seed diverged keep a row (seeds 0).
    counts = diverged.reindex(columns=lines + ['lr_fraction']).groupby(
        lines + ['lr_fraction'], dropna=False).size().rename('diverged').reset_index()
    stats = stats.merge(counts, on=lines + ['lr_fraction'], how='outer')
    stats['diverged'] = stats['diverged'].fillna(0).astype(int)
    stats['seeds'] = stats['seeds'].fillna(0).astype(int)
    return stats.sort_values(lines + ['lr_fraction']).reset_index(drop=True)


def _lr_figure(frame: pd.DataFrame, stats: pd.DataFrame, lines: list[str]):
    """:func:`plot_lr`'s panels: accuracy (kernels as lines), distance to the
    NTK dynamics, NTK drift and loss peak against ``lr_fraction``."""
    panels = [c for c in ('best', 'dist_ntk', 'ntk_drift', 'loss_peak')
              if c in stats.columns]
    plt = figures.pyplot()
    columns = 2 if len(panels) == 4 else len(panels)
    fig, grid = plt.subplots(len(panels) // columns, columns,
                             figsize=(4.8 * columns, 3.8 * (len(panels) // columns)),
                             squeeze=False)
    axes = dict(zip(panels, grid.ravel()))
    for i, (key, part) in enumerate(stats.groupby(lines, dropna=False)):
        part = part[part['seeds'] > 0].sort_values('lr_fraction')
        label = model_label(stats, key, lines)
        color = f'C{i}'
        ax = axes['best']
        ax.errorbar(part['lr_fraction'], part['best'],
                    yerr=part['best_std'].fillna(0), fmt='o-', ms=4, capsize=2,
                    color=color, label=label)
        ax.plot(part['lr_fraction'], part['final'], ':', color=color, lw=1)
        for column in ('dist_ntk', 'ntk_drift', 'loss_peak'):
            if column in axes:
                axes[column].plot(part['lr_fraction'], part[column], 'o-', ms=4,
                                  color=color)
    _kernel_lines([axes['best']], metric_rows(frame, 'kernel_test_accuracy'))
    titles = {'best': 'test accuracy (best over training; dotted: final)',
              'dist_ntk': 'RMS distance to the NTK dynamics, same $f_0$ (test, last step)',
              'ntk_drift': r'NTK change $\|\Theta_t-\Theta_0\|/\|\Theta_0\|$ (last step)',
              'loss_peak': 'peak train loss / step-0 loss'}
    for column, ax in axes.items():
        ax.set_xlabel(r'learning rate / $(2/\lambda_{max})$')
        ax.set_title(titles[column], fontsize=9)
        ax.axvline(1.0, color='gray', lw=0.8, ls=':')
        if column != 'best':
            ax.set_yscale('log')
    if 'loss_peak' in axes:
        axes['loss_peak'].axhline(1.0, color='gray', lw=0.8)
    gone = stats[stats['diverged'] > 0]
    if not gone.empty:
        text = '; '.join(f"{r['lr_fraction']:g}x: {r['diverged']} of "
                         f"{r['diverged'] + r['seeds']}"
                         for _, r in gone.iterrows())
        fig.text(0.5, 0.005, 'diverged, not drawn (learning rate / bound: '
                 'seeds): ' + text, fontsize=8, ha='center', va='bottom')
    axes['best'].legend(fontsize=7)
    return fig


def _accuracy_lines(ax, stats: pd.DataFrame, x: str):
    """Draws each predictor's best test accuracy (``best`` +- ``best_std``) and
    its final one (dotted) against ``x``, in :data:`_BAR_PREDICTORS` order.

    Returns:
        ``(line, style)`` per predictor: its rows sorted by ``x`` and the
        colour / line style it was drawn with, for the caller's other panels.
    """
    order = list(_BAR_PREDICTORS)
    drawn = []
    for i, (predictor, line) in enumerate(sorted(
            stats.groupby('predictor'), key=lambda g: order.index(g[0])
            if g[0] in order else len(order))):
        line = line.sort_values(x)
        style = dict(color=f'C{i}', ls=PREDICTOR_STYLE.get(predictor, '-'))
        ax.errorbar(line[x], line['best'], yerr=line['best_std'].fillna(0),
                    fmt='o', ms=4, capsize=2,
                    label=PREDICTOR_LABELS.get(predictor, predictor), **style)
        ax.plot(line[x], line['final'], ':', color=style['color'], lw=1)
        drawn.append((line, style))
    return drawn


def plot_width_accuracy(frame: pd.DataFrame, out_dir: Path,
                        name: str) -> list[Path]:
    """Lee et al. 2020, Sec. 3: test accuracy and loss against the width.

    Per model and parameterisation (columns of panels) and predictor (lines):
    top, the best test accuracy over training (mean +- std over seeds) and
    the final one (dotted); bottom, the test loss at the last step (log
    scale); log-2 width axis; NNGP / NTK kernel regression at ``t = inf`` as
    horizontal lines. Diverged predictors are left out.
    """
    frame = plain_rows(frame)
    rows = frame[frame['metric'].isin(['test_accuracy', 'test_loss'])]
    if (metric_rows(rows, 'test_accuracy').empty or 'width' not in rows.columns
            or rows['width'].nunique() < 3):
        return []
    rows = converged_rows(rows, diverged_runs(frame))
    panels = [c for c in ('model', 'parameterization') if c in rows.columns]
    # A panel per setting swept beside the width (n_train, lr_kernel, ...):
    # runs of different settings are not seeds of one point.
    panels += [c for c in line_columns(rows) if c not in panels]
    keys = panels + ['predictor', 'width']
    seed_keys = keys + ['run_dir', 'seed']
    runs = best_and_final(metric_rows(rows, 'test_accuracy'), seed_keys)
    loss = last_step(metric_rows(rows, 'test_loss'))
    if not loss.empty:
        runs['test_loss'] = loss.groupby(seed_keys, dropna=False)['value'].mean()
    runs = runs.reset_index()
    stats = runs.groupby(keys, dropna=False).agg(
        best=('best', 'mean'), best_std=('best', 'std'), final=('final', 'mean'),
        seeds=('best', 'size'),
        **({'test_loss': ('test_loss', 'mean')} if 'test_loss' in runs else {})
    ).reset_index()
    groups = list(stats.groupby(panels, dropna=False))
    n_rows = 2 if 'test_loss' in stats.columns else 1
    plt = figures.pyplot()
    fig, axes = plt.subplots(n_rows, len(groups),
                             figsize=(5.2 * len(groups), 4.0 * n_rows),
                             squeeze=False, sharex='col')
    for column, (key, part) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        ax = axes[0][column]
        for line, style in _accuracy_lines(ax, part, 'width'):
            if n_rows == 2:
                axes[1][column].plot(line['width'], line['test_loss'], marker='o',
                                     ms=4, **style)
        for row, metric in enumerate(('kernel_test_accuracy',
                                      'kernel_test_loss')[:n_rows]):
            mk = metric_rows(frame, metric)
            for c, value in zip(panels, key):
                if c in mk.columns:
                    mk = mk[mk[c].isna() if pd.isna(value) else mk[c] == value]
            _kernel_lines([axes[row][column]], mk)
        widths = sorted(part['width'].unique())
        for row in range(n_rows):
            axes[row][column].set_xscale('log', base=2)
            axes[row][column].set_xticks(widths, [f'{int(w)}' for w in widths])
            axes[row][column].minorticks_off()
        axes[-1][column].set_xlabel('width $n$')
        ax.set_title(', '.join(
            MODEL_LABELS.get(str(v), str(v)) if c == 'model' else
            f'{v} param.' if c == 'parameterization' else
            f'{c}={figures.value_text(v)}' for c, v in zip(panels, key)
            if c in ('model', 'parameterization') or not pd.isna(v)), fontsize=9)
    axes[0][0].set_ylabel('test accuracy (best over training; dotted: final)')
    if n_rows == 2:
        axes[1][0].set_ylabel('test loss at the last step')
        for ax in axes[1]:
            ax.set_yscale('log')
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    paths = save_figure(fig, out_dir, f'{name}_width_accuracy')
    path = out_dir / f'{name}_width_accuracy.csv'
    stats.to_csv(path, index=False)
    return paths + [path]


def plot_depth_accuracy(frame: pd.DataFrame, out_dir: Path,
                        name: str) -> list[Path]:
    """Huang et al. 2020 with finite nets: accuracy and NTK drift against the depth.

    Per model (columns of panels) at one width: top, each predictor's best
    test accuracy over training (mean +- std over seeds; dotted: the final
    one) and the NNGP / NTK kernel regression at ``t = inf`` of the same depth
    (dashed; shared axes across models); bottom, the relative change of the
    empirical NTK over training (``ntk_drift`` at the last step), log scale.
    Log-2 depth axis. Drawn when a run set sweeps at least three depths at
    one width. Diverged predictors are left out.
    """
    frame = plain_rows(frame)
    rows = frame[frame['metric'].isin(['test_accuracy'])]
    if (rows.empty or not _depth_sweep(rows) or rows['depth'].nunique() < 3
            or ('width' in rows.columns and rows['width'].nunique() > 1)):
        return []
    rows = converged_rows(rows, diverged_runs(frame))
    keys = ['model', 'predictor', 'depth']
    runs = best_and_final(rows, keys + ['run_dir', 'seed']).reset_index()
    stats = runs.groupby(keys, dropna=False).agg(
        best=('best', 'mean'), best_std=('best', 'std'), final=('final', 'mean'),
        seeds=('best', 'size')).reset_index()
    drift = last_step(metric_rows(frame, 'ntk_drift'))
    drift = drift.groupby(['model', 'depth'])['value'].agg(['mean', 'std']).reset_index()
    positive = drift['mean'][drift['mean'] > 0]
    drift_ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
                   if not positive.empty and positive.min() / 3 <= t <= positive.max() * 3]
    kernel = metric_rows(frame, 'kernel_test_accuracy')
    if 'parameterization' in kernel.columns and (kernel['parameterization'] == 'ntk').any():
        kernel = kernel[kernel['parameterization'] == 'ntk']
    kernel = (kernel.groupby(['model', 'kernel', 'depth'])['value'].mean().reset_index()
              if not kernel.empty else kernel)
    models = [m for m in ('fc', 'resnet') if m in set(stats['model'])] + sorted(
        set(stats['model']) - {'fc', 'resnet'})
    plt = figures.pyplot()
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 7.5),
                             squeeze=False, sharex='col', sharey='row')
    table = []
    for column, model in enumerate(models):
        ax, ax_drift = axes[0][column], axes[1][column]
        part = stats[stats['model'] == model]
        for line, _ in _accuracy_lines(ax, part, 'depth'):
            table += [dict(model=model, **r)
                      for r in line.drop(columns=['model']).to_dict('records')]
        if not kernel.empty:
            # Not the predictors' C0-C3: the kernels at t = inf stand apart.
            for kern, color in (('nngp', 'tab:purple'), ('ntk', 'tab:brown')):
                line = kernel[(kernel['model'] == model) & (kernel['kernel'] == kern)]
                if line.empty:
                    continue
                line = line.sort_values('depth')
                ax.plot(line['depth'], line['value'], '--', color=color, lw=1.2,
                        label=f'{kern.upper()} kernel, $t=\\infty$')
                table += [dict(model=model, predictor=f'{kern}_kernel', depth=d, final=v)
                          for d, v in zip(line['depth'], line['value'])]
        line = drift[drift['model'] == model].sort_values('depth')
        if not line.empty:
            ax_drift.errorbar(line['depth'], line['mean'], yerr=line['std'].fillna(0),
                              fmt='o-', ms=4, capsize=2, color='k')
            ax_drift.set_yscale('log')
            ax_drift.set_yticks(drift_ticks, [f'{t:g}' for t in drift_ticks])
            ax_drift.minorticks_off()
            table += [dict(model=model, predictor='ntk_drift', depth=d, final=v)
                      for d, v in zip(line['depth'], line['mean'])]
        depths = sorted(part['depth'].unique())
        for a in (ax, ax_drift):
            a.set_xscale('log', base=2)
            a.set_xticks(depths, [f'{int(d)}' for d in depths])
            a.minorticks_off()
        width = rows['width'].dropna().unique() if 'width' in rows.columns else []
        ax.set_title(MODEL_LABELS.get(str(model), str(model))
                     + (f', width {int(width[0])}' if len(width) else ''), fontsize=9)
        ax_drift.set_xlabel('depth $L$')
    axes[0][0].set_ylabel('test accuracy (best over training; dotted: final)')
    axes[1][0].set_ylabel(r'NTK change $\|\Theta_T - \Theta_0\|_F / \|\Theta_0\|_F$')
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    out_dir = Path(out_dir)
    paths = save_figure(fig, out_dir, f'{name}_depth_accuracy')
    path = out_dir / f'{name}_depth_accuracy.csv'
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]
