"""Figures and tables of the ``alignment`` experiment and its paper configs.

Drawn from the long-format rows (many runs; means over seeds), each only when
the rows it needs are present:

Spectrum along training (Kopitkov & Indelman 2019, "Neural Spectrum
Alignment: Empirical Study"; ``experiment=alignment`` / ``kopitkov2019``):

* ``eigenvalues``: the top eigenvalues ``lambda_i(K_t)`` of the empirical NTK
  Gram matrix against the training step, one panel per run (model, learning
  rate schedule, ...), the infinite-width values at ``t = 0`` as open markers;
* ``training``: learning rate, training loss, kernel-target alignment
  ``A(K_t, Y)`` (uncentred and centred) and ``E_k(Y)`` for a small ``k``
  against the step, one line per run (e.g. constant vs step decay vs cosine);
* ``energy``: ``E_k(v) = sum_{i<=k} (u_i^T v)^2 / ||v||^2`` against ``k`` for the
  target, the output and the residual, one curve per logged step;
* ``alignment_summary.csv``: first and last logged step of each run.

Kernel principal components (Jacot et al. 2018, Fig. 3; ``jacot2018_fig3``):

* ``pc_scatter`` (Fig. 3a): the points at their coordinates on two kernel
  principal components, coloured by digit;
* ``pc_convergence`` (Figs. 3b, 3c): the deviation ``||h_t||_p`` from the
  straight line against ``g_t``, and ``|g_t|`` against ``t`` with the
  infinite-width ``0.5 exp(-lambda_2 t)``, one colour per width;
* ``pc_summary.csv``.

Spectra on the sphere (Belfer et al. 2021; ``resntk_spectrum``):

* ``sphere_spectrum``: ``lambda_l / k(1)`` against the harmonic degree ``l``
  (log-log), one panel per model and alpha, one line per depth, Gram-matrix
  eigenvalues grouped by degree as markers, the slope ``-d`` for reference;
* ``sphere_shape``: the kernel ``k(t) / k(1)`` against ``t = <x, x'>``;
* ``sphere_exponents``: the fitted decay exponent against depth, and
  ``sphere_exponents.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ntkexp.plots import figures

# Columns that describe a measurement, not a run: never used to tell runs apart.
_MEASUREMENT = {
    'experiment', 'metric', 'value', 'seed', 'step', 'time', 'lr', 'rank',
    'vector', 'split', 'kernel', 'setup', 'point', 'component', 'label',
    'init', 't', 'degree', 'multiplicity', 'method', 'parity', 'degree_min',
    'degree_max', 'n_eigenvectors', 'n_points', 'mean', 'std', 'n_seeds', 'precision',
    'run_dir', 'status', 'wall_time_s', 'error', 'config_hash', 'finished',
    'experiment_run',
}
MODEL_LABELS = figures.MODEL_LABELS


def _save(fig, out_dir: Path, name: str, dpi: int = 100) -> list[Path]:
    return figures.save(fig, out_dir, name, dpi=dpi, tight=False)


def run_columns(frame: pd.DataFrame) -> list[str]:
    """Parameter columns whose values tell the runs apart (model first)."""
    cols = [c for c in frame.columns if c not in _MEASUREMENT
            and frame[c].astype(str).nunique() > 1]
    order = ['model', 'dataset', 'schedule', 'width', 'depth', 'alpha']
    return sorted(cols, key=lambda c: (order.index(c) if c in order else 99, c))


def run_labels(frame: pd.DataFrame, always=('model',)) -> pd.Series:
    """One readable label per row: ``FC, schedule=step, width=256``."""
    cols = list(dict.fromkeys([c for c in always if c in frame.columns]
                              + run_columns(frame)))
    if not cols:
        return pd.Series(['all'] * len(frame), index=frame.index)

    def one(row) -> str:
        parts = []
        for c in cols:
            v = row[c]
            if c == 'model':
                parts.append(MODEL_LABELS.get(str(v), str(v)))
            elif pd.isna(v):
                continue
            else:
                parts.append(f'{c}={figures.value_text(v)}')
        return ', '.join(parts)
    return frame[cols].apply(one, axis=1)


def _mean(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean ``value`` over seeds (and inits) at each ``by`` setting."""
    return frame.groupby(by, dropna=False)['value'].mean().reset_index()


def _step_axis(ax) -> None:
    ax.set_xscale('symlog', linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel('training step $s$ (symlog)')


def _panel_grid(n: int, width: float, height: float):
    """A grid of ``n`` panels, at most three a row, each ``width x height`` inches."""
    plt = figures.pyplot()
    ncols = min(3, n)
    nrows = int(np.ceil(n / ncols))
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                        squeeze=False)


def _depth_colours(rows: pd.DataFrame):
    """``(depth, colour)`` for each depth of ``rows``, shallow to deep (viridis)."""
    depths = sorted(rows['depth'].unique())
    return zip(depths, figures.pyplot().cm.viridis(np.linspace(0, 0.9, len(depths))))


def _hide_unused(axes, n: int) -> None:
    """Blanks the grid's panels after the first ``n``."""
    for ax in list(axes.flat)[n:]:
        ax.axis('off')


# --- spectrum along training -------------------------------------------------


def _training_figures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The figures of the spectrum along training and the summary table."""
    frame = frame.copy()
    frame['run'] = run_labels(frame)
    train = frame[frame.get('split', 'train').fillna('train') == 'train'] \
        if 'split' in frame.columns else frame
    runs = sorted(train['run'].unique())
    k_star = _target_energy_rank(train)
    return (_eigenvalue_figure(train, runs, out_dir)
            + _training_curves_figure(train, runs, k_star, out_dir)
            + _energy_figure(train, runs, out_dir)
            + _summary_table(frame, train, runs, k_star, out_dir))


def _eigenvalue_figure(train: pd.DataFrame, runs: list[str], out_dir: Path) -> list[Path]:
    """``eigenvalues``: the top eigenvalues of the empirical NTK Gram along
    training, a panel per run, with the infinite-width ones at ``t = 0``."""
    eig = train[train['metric'] == 'eigenvalue']
    if eig.empty:
        return []
    plt = figures.pyplot()
    fig, axes = _panel_grid(len(runs), 4.2, 3.4)
    for ax, run in zip(axes.flat, runs):
        rows = eig[eig['run'] == run]
        emp = _mean(rows[rows['kernel'] == 'empirical'], ['rank', 'step'])
        inf = _mean(rows[rows['kernel'] == 'infinite'], ['rank'])
        ranks = sorted(emp['rank'].unique())[:10]
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(ranks)))
        for rank, color in zip(ranks, colors):
            line = emp[emp['rank'] == rank].sort_values('step')
            ax.plot(line['step'], line['value'], '-o', ms=2.5, color=color,
                    label=fr'$\lambda_{{{int(rank)}}}$')
            ref = inf[inf['rank'] == rank]
            if not ref.empty:  # drawn over the axis line, not clipped
                ax.plot([0], ref['value'].values[:1], 'o', mfc='none',
                        color=color, ms=6, clip_on=False, zorder=5)
        ax.set_yscale('log')
        # Minor ticks unlabelled (6x10^1, 4x10^1, 3x10^1 ... crowded);
        # under two decades, labels at 1, 2, 5 x 10^k instead.
        from matplotlib import ticker  # pylint: disable=g-import-not-at-top
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        low, high = ax.get_ylim()
        if 0 < low and high / low < 100:
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(
                ticker.FuncFormatter(lambda v, _: f'{v:g}'))
        _step_axis(ax)
        ax.set_ylabel(r'eigenvalue of $K_t$ (NTK Gram)')
        ax.set_title(run, fontsize=8)
        ax.legend(fontsize=6, ncol=2)
    _hide_unused(axes, len(runs))
    fig.suptitle('Top NTK eigenvalues along training '
                 '(open markers: infinite width, t = 0)', fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, 'eigenvalues')


def _target_energy(train: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``E_k(Y)``, the target's energy in the top ``k`` eigenvectors."""
    return train[(train['metric'] == 'energy') & (train.get('vector') == 'target')] \
        if 'vector' in train.columns else train.iloc[:0]


def _target_energy_rank(train: pd.DataFrame) -> Optional[int]:
    """The ``k`` of the target-energy panel and columns: the first logged rank
    from 5 (the smallest logged one otherwise), None without energy rows."""
    energy = _target_energy(train)
    if not energy.empty:
        ks = sorted(energy['rank'].unique())
        small = [k for k in ks if k >= 5] or ks
        return small[0]
    return None


def _training_curves_figure(train: pd.DataFrame, runs: list[str],
                            k_star: Optional[int], out_dir: Path) -> list[Path]:
    """``training``: learning rate, loss, lambda_1, alignment (plain and
    centred) and the target energy ``E_k*`` against the step, the runs (e.g.
    Kopitkov & Indelman's learning-rate schedules) side by side, dotted at the
    infinite-width NTK's values."""
    plt = figures.pyplot()
    energy = _target_energy(train)
    panels = [('lr', 'learning rate', 'loss', True),
              ('loss', 'training loss', 'loss', True),
              ('lambda_1', r'top eigenvalue $\lambda_1(K_t)$', 'eigenvalue', True),
              ('alignment', r'alignment $A(K_t, Y)$', 'alignment', False),
              ('alignment_centered', r'centred alignment $A(HK_tH, HY)$',
               'alignment_centered', False)]
    npanel = len(panels) + (1 if k_star else 0)
    ncols = min(npanel, 3)  # a grid: six panels in a row were 20 inches wide
    nrows = -(-npanel // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 3.1 * nrows),
                             squeeze=False, layout='constrained')
    axes = axes.ravel()
    for ax in axes[npanel:]:
        ax.set_visible(False)
    for ax, (metric, ylabel, source, logy) in zip(axes, panels):
        if metric == 'lr':
            rows = train[(train['metric'] == 'loss') & train['lr'].notna()] \
                if 'lr' in train.columns else train.iloc[:0]
            for run in runs:
                line = rows[rows['run'] == run].groupby('step')['lr'].mean()
                ax.step(line.index, line.values, where='post', label=run)
        else:
            rows = train[train['metric'] == source]
            if metric == 'lambda_1':
                rows = rows[rows['rank'] == 1]
            if 'kernel' in rows.columns:
                inf = rows[rows['kernel'] == 'infinite']
                rows = rows[rows['kernel'] != 'infinite']
            else:
                inf = rows.iloc[:0]
            for i, run in enumerate(runs):
                line = _mean(rows[rows['run'] == run], ['step'])
                handle, = ax.plot(line['step'], line['value'], '-o', ms=2.5, label=run)
                ref = inf[inf['run'] == run]
                if not ref.empty:
                    ax.axhline(ref['value'].mean(), ls=':', lw=1,
                               color=handle.get_color())
        if logy:
            ax.set_yscale('log')
        _step_axis(ax)
        ax.set_ylabel(ylabel)
    if k_star:
        ax = axes[len(panels)]
        emp = energy[energy['kernel'] != 'infinite'] if 'kernel' in energy else energy
        inf = energy[energy['kernel'] == 'infinite'] if 'kernel' in energy else energy.iloc[:0]
        for run in runs:
            line = _mean(emp[(emp['run'] == run) & (emp['rank'] == k_star)], ['step'])
            handle, = ax.plot(line['step'], line['value'], '-o', ms=2.5, label=run)
            ref = inf[(inf['run'] == run) & (inf['rank'] == k_star)]
            if not ref.empty:
                ax.axhline(ref['value'].mean(), ls=':', lw=1, color=handle.get_color())
        _step_axis(ax)
        ax.set_ylabel(fr'$E_{{{int(k_star)}}}(Y)$: target energy in top {int(k_star)}')
    figures.legend_below(fig, *axes[0].get_legend_handles_labels())
    fig.suptitle('Along training (dotted: infinite-width NTK)', fontsize=9)
    return _save(fig, out_dir, 'training')


def _energy_figure(train: pd.DataFrame, runs: list[str], out_dir: Path) -> list[Path]:
    """``energy``: ``E_k``, the share of the target, the output and the
    residual in the top ``k`` eigenvectors, against ``k``, a row of panels per
    run, a line per logged step."""
    en = train[train['metric'] == 'energy']
    if en.empty:
        return []
    plt = figures.pyplot()
    vectors = [v for v in ('target', 'output', 'residual')
               if v in set(en['vector'])]
    fig, axes = plt.subplots(len(runs), len(vectors),
                             figsize=(4 * len(vectors), 3.2 * len(runs)),
                             squeeze=False, layout='constrained')
    for r, run in enumerate(runs):
        rows = en[en['run'] == run]
        emp = _mean(rows[rows['kernel'] == 'empirical'], ['vector', 'step', 'rank'])
        inf = _mean(rows[rows['kernel'] == 'infinite'], ['vector', 'rank'])
        steps = sorted(emp['step'].unique())
        colors = plt.cm.plasma(np.linspace(0, 0.85, len(steps)))
        # Many logged steps: a colour bar of the step, not a legend
        # entry each (13 entries at font size 5 could not be read).
        by_bar = len(steps) > 6
        for c, vector in enumerate(vectors):
            ax = axes[r, c]
            for step, color in zip(steps, colors):
                line = emp[(emp['vector'] == vector) & (emp['step'] == step)]
                ax.plot(line['rank'], line['value'], '-o', ms=2, color=color,
                        label=None if by_bar else f's={int(step)}')
            ref = inf[inf['vector'] == vector]
            if not ref.empty:
                ax.plot(ref['rank'], ref['value'], 'k--', lw=1,
                        label='infinite width')
            ax.set_xscale('log')
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel('number of top eigenvectors $k$')
            ax.set_ylabel(f'$E_k$({vector})')
            ax.set_title(run, fontsize=7)
            if c == 0:
                ax.legend(fontsize=6 if by_bar else 5, ncol=1 if by_bar else 2)
        if by_bar:
            from matplotlib import colors as mcolors  # pylint: disable=g-import-not-at-top
            bar = fig.colorbar(
                plt.cm.ScalarMappable(
                    cmap=mcolors.ListedColormap(colors),
                    norm=mcolors.BoundaryNorm(np.arange(len(steps) + 1) - 0.5,
                                              len(steps))),
                ax=list(axes[r]), pad=0.01, fraction=0.02)
            ticks = sorted(set(np.linspace(0, len(steps) - 1, 5).round().astype(int)))
            bar.set_ticks(ticks, labels=[str(int(steps[i])) for i in ticks])
            bar.set_label('GD step', fontsize=7)
            bar.ax.tick_params(labelsize=6)
    return _save(fig, out_dir, 'energy', dpi=70)


def _summary_table(frame: pd.DataFrame, train: pd.DataFrame, runs: list[str],
                   k_star: Optional[int], out_dir: Path) -> list[Path]:
    """``alignment_summary.csv``: each run's first and last logged step (loss,
    alignment, NTK change, lambda_1, target and output energy, test accuracy)."""
    lines = []
    for run in runs:
        rows = train[(train['run'] == run) & (train.get('kernel', 'empirical') != 'infinite')] \
            if 'kernel' in train.columns else train[train['run'] == run]
        if rows.empty or 'step' not in rows.columns:
            continue
        for step in (rows['step'].min(), rows['step'].max()):
            at = rows[rows['step'] == step]
            entry = {'run': run, 'step': int(step)}
            for metric in ('loss', 'alignment', 'alignment_centered', 'ntk_change',
                           'ntk_distance_infinite'):
                value = at[at['metric'] == metric]['value']
                if not value.empty:
                    entry[metric] = float(value.mean())
            value = at[(at['metric'] == 'eigenvalue') & (at['rank'] == 1)]['value']
            if not value.empty:
                entry['lambda_1'] = float(value.mean())
            for vector in ('target', 'output') if k_star else ():
                value = at[(at['metric'] == 'energy') & (at['vector'] == vector)
                           & (at['rank'] == k_star)]['value']
                if not value.empty:
                    entry[f'E_{int(k_star)}({vector})'] = float(value.mean())
            acc = frame[(frame['run'] == run) & (frame['metric'] == 'accuracy')
                        & (frame['step'] == step)]['value']
            if not acc.empty:
                entry['test_accuracy'] = float(acc.mean())
            lines.append(entry)
    if lines:
        path = out_dir / 'alignment_summary.csv'
        pd.DataFrame(lines).to_csv(path, index=False, float_format='%.5g')
        return [path]
    return []


# --- kernel principal components (Jacot et al. 2018, Fig. 3) ------------------


def _pc_figures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    plt = figures.pyplot()
    paths: list[Path] = []
    frame = frame.copy()
    frame['run'] = run_labels(frame, always=())
    scatter = frame[frame['metric'] == 'pc_coordinate']
    if not scatter.empty:
        first = scatter[scatter['run'] == sorted(scatter['run'].unique())[0]]
        comps = sorted(first['component'].unique())[:2]
        if len(comps) == 2:
            a = first[first['component'] == comps[0]].drop_duplicates('point').set_index('point')
            b = first[first['component'] == comps[1]].drop_duplicates('point').set_index('point')
            fig, ax = plt.subplots(figsize=(4.6, 4))
            labels = a['label'] if 'label' in a.columns else None
            sc = ax.scatter(a['value'], b.loc[a.index, 'value'], s=6,
                            c=None if labels is None else labels, cmap='tab10')
            if labels is not None:
                fig.colorbar(sc, ax=ax, label='digit')
            ax.set_xlabel(f'$f^{{({int(comps[0])})}}(x)$')
            ax.set_ylabel(f'$f^{{({int(comps[1])})}}(x)$')
            ax.set_title('Kernel principal components of the NTK (Fig. 3a)',
                         fontsize=8)
            fig.tight_layout()
            paths += _save(fig, out_dir, 'pc_scatter')

    coef = frame[frame['metric'] == 'pc_coefficient']
    if not coef.empty:
        orth = frame[frame['metric'] == 'pc_orthogonal']
        theory = frame[frame['metric'] == 'pc_theory']
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
        width_col = 'width' if 'width' in frame.columns else None
        groups = sorted(coef[width_col].unique()) if width_col else [None]
        colors = plt.cm.viridis(np.linspace(0, 0.85, max(len(groups), 1)))
        lines = []
        for width, color in zip(groups, colors):
            sel = (lambda f: f[f[width_col] == width]) if width_col else (lambda f: f)
            c_w, o_w = sel(coef), sel(orth)
            inits = sorted(c_w['init'].unique()) if 'init' in c_w else [0]
            for j, init in enumerate(inits):
                c_i = c_w[c_w['init'] == init].groupby('step')[['time', 'value']].mean()
                o_i = o_w[o_w['init'] == init].groupby('step')['value'].mean()
                label = (f'width {figures.value_text(width)}'
                         if j == 0 and width is not None else None)
                ax1.plot(c_i['value'], o_i.loc[c_i.index], '-', color=color,
                         lw=1, label=label)
                ax2.plot(c_i['time'], np.abs(c_i['value']), '-', color=color,
                         lw=1, label=label)
                last = c_i.index.max()
                lines.append({'width': width, 'init': int(init),
                              'step': int(last), 'time': float(c_i.loc[last, 'time']),
                              'g': float(c_i.loc[last, 'value']),
                              'h_max': float(o_i.max()),
                              'h_last': float(o_i.loc[last])})
        th = theory.groupby('step')[['time', 'value']].mean()
        ax2.plot(th['time'], th['value'], 'b--', lw=1.5,
                 label=r'$0.5\,e^{-\lambda_2 t}$ (infinite width)')
        ax1.axhline(0, color='b', ls='--', lw=1)
        ax1.set_xlabel(r'$g_t$: component of $f_t - f^*$ along $f^{(2)}$')
        ax1.set_ylabel(r'$\|h_t\|_{p^{in}}$: deviation from the line')
        ax1.set_title('Fig. 3b', fontsize=8)
        ax2.set_yscale('log')
        ax2.set_xlabel('time $t$ (learning rate x steps)')
        ax2.set_ylabel(r'$|g_t|$')
        ax2.set_title('Fig. 3c', fontsize=8)
        ax1.legend(fontsize=7)
        ax2.legend(fontsize=7)
        fig.tight_layout()
        paths += _save(fig, out_dir, 'pc_convergence')
        lam = frame[(frame['metric'] == 'pc_eigenvalue')]
        table = pd.DataFrame(lines)
        if not lam.empty and not th.empty:
            table['theory_last'] = float(th['value'].iloc[-1])
        path = out_dir / 'pc_summary.csv'
        table.to_csv(path, index=False, float_format='%.5g')
        paths.append(path)
    return paths


# --- spectra on the sphere (Belfer et al. 2021) ------------------------------


def _alpha_text(row: pd.Series) -> str:
    """A ResNet panel's residual scale: its alpha, or alpha = L^-gamma where
    ``model.alpha_gamma`` set it at each depth (Huang et al. 2020)."""
    if not pd.isna(row['alpha']):
        return f", alpha={figures.value_text(float(row['alpha']))}"
    gamma = row.get('alpha_gamma', None)
    return '' if gamma is None or pd.isna(gamma) else f', alpha=L^-{float(gamma):g}'


def _sphere_figures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The spectra on the sphere: a panel per model, alpha and kernel."""
    frame = frame.copy()
    if 'alpha' not in frame.columns:
        frame['alpha'] = np.nan
    if 'kernel' not in frame.columns:
        frame['kernel'] = 'ntk'
    frame['panel'] = frame.apply(
        lambda r: MODEL_LABELS.get(str(r['model']), str(r['model'])) + _alpha_text(r)
        + ('' if r['kernel'] == 'ntk' else f" ({r['kernel']})"), axis=1)
    panels = sorted(frame['panel'].unique())
    d = None
    if 'd' in frame.columns and frame['d'].notna().any():
        d = int(frame['d'].dropna().iloc[0])
    return (_sphere_spectrum_figure(frame, panels, d, out_dir)
            + _sphere_shape_figure(frame, panels, out_dir)
            + _sphere_exponents(frame, panels, d, out_dir))


def _sphere_spectrum_figure(frame: pd.DataFrame, panels: list[str], d: Optional[int],
                            out_dir: Path) -> list[Path]:
    """``sphere_spectrum``: the Funk-Hecke eigenvalues ``lambda_l / k(1)`` by
    degree (lines, a panel per model and alpha, a line per depth), the Gram
    matrix's by degree (circles) and the slope ``-d``."""
    norm = frame[frame['metric'] == 'eigenvalue_normalized']
    if norm.empty:
        return []
    raw = frame[frame['metric'] == 'eigenvalue']
    gram = frame[frame['metric'] == 'gram_eigenvalue']
    fig, axes = _panel_grid(len(panels), 4.3, 3.5)
    for ax, panel in zip(axes.flat, panels):
        rows = norm[norm['panel'] == panel]
        for depth, color in _depth_colours(rows):
            line = _mean(rows[rows['depth'] == depth], ['degree'])
            line = line[(line['degree'] >= 1) & (line['value'] > 0)]
            ax.plot(line['degree'], line['value'], '-', color=color, lw=1,
                    label=f'depth {int(depth)}')
            g = gram[(gram['panel'] == panel) & (gram['depth'] == depth)]
            r0 = raw[(raw['panel'] == panel) & (raw['depth'] == depth)
                     & (raw['degree'] == 0)]['value'].mean()
            n0 = rows[(rows['depth'] == depth) & (rows['degree'] == 0)]['value'].mean()
            if not g.empty and n0 > 0:
                k1 = r0 / n0
                g = _mean(g, ['degree'])
                g = g[g['degree'] >= 1]
                ax.plot(g['degree'], g['value'] / k1, 'o', mfc='none',
                        color=color, ms=4)
        if d is not None:
            ls = np.array([8.0, 64.0])
            anchor = norm[(norm['panel'] == panel) & (norm['degree'] == 8)]['value'].median()
            if np.isfinite(anchor) and anchor > 0:
                ax.plot(ls, anchor * 2 * (ls / 8) ** (-d), 'k:', lw=1,
                        label=f'slope $-d={-d}$')
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('spherical-harmonic degree $l$')
        ax.set_ylabel(r'$\lambda_l / k(1)$')
        ax.set_title(panel + (f' on $S^{{{d - 1}}}$' if d else ''), fontsize=8)
        ax.legend(fontsize=6)
    _hide_unused(axes, len(panels))
    fig.suptitle('Mercer eigenvalues of the NTK by degree (lines: Funk-Hecke; '
                 'circles: Gram matrix of uniform points)', fontsize=8)
    fig.tight_layout()
    return _save(fig, out_dir, 'sphere_spectrum')


def _sphere_shape_figure(frame: pd.DataFrame, panels: list[str],
                         out_dir: Path) -> list[Path]:
    """``sphere_shape``: the kernel ``k(t) / k(1)`` against ``t = <x, x'>``."""
    shape = frame[frame['metric'] == 'kernel_shape']
    if shape.empty:
        return []
    fig, axes = _panel_grid(len(panels), 4.3, 3.3)
    for ax, panel in zip(axes.flat, panels):
        rows = shape[shape['panel'] == panel]
        for depth, color in _depth_colours(rows):
            line = _mean(rows[rows['depth'] == depth], ['t'])
            ax.plot(line['t'], line['value'], '-', color=color,
                    label=f'depth {int(depth)}')
        ax.set_xlabel(r"$t = \langle x, x' \rangle$")
        ax.set_ylabel(r'$k(t) / k(1)$')
        ax.set_title(panel, fontsize=8)
        ax.legend(fontsize=6)
    _hide_unused(axes, len(panels))
    fig.tight_layout()
    return _save(fig, out_dir, 'sphere_shape')


def _sphere_exponents(frame: pd.DataFrame, panels: list[str], d: Optional[int],
                      out_dir: Path) -> list[Path]:
    """``sphere_exponents``: the fitted decay exponent of ``lambda_l`` against the
    depth, even and odd degrees apart, and ``sphere_exponents.csv``."""
    expo = frame[(frame['metric'] == 'decay_exponent')]
    if expo.empty:
        return []
    plt = figures.pyplot()
    # Even and odd degrees fitted apart: a ReLU NTK's spectrum is a
    # sawtooth between them, so one fit over all degrees (kept in the
    # CSV) mixes two lines; a one-block bias-free ResNet has no odd
    # degrees at all (no point drawn there).
    parities = [p for p in ('even', 'odd') if (expo['parity'] == p).any()]
    parities = parities or ['all']
    fig, axes = plt.subplots(1, len(parities), sharey=True, squeeze=False,
                             figsize=(4.2 * len(parities) + 0.8, 3.6))
    table = []
    values = []
    for ax, parity in zip(axes[0], parities):
        for panel in panels:
            rows = expo[(expo['panel'] == panel) & (expo['parity'] == parity)]
            line = _mean(rows, ['depth']).dropna(subset=['value'])
            if line.empty:
                continue
            ax.plot(line['depth'], line['value'], '-o', ms=3, label=panel)
            values.extend(line['value'])
        if d is not None:
            ax.axhline(-d, color='k', ls=':', lw=1, label=f'$-d = {-d}$')
        ax.set_xscale('log', base=2)
        ax.set_xlabel('depth $L$ (FC: hidden layers; ResNet: blocks)')
        ax.set_title(f'{parity} degrees $l$', fontsize=9)
    for panel in panels:
        for parity in ('all', 'even', 'odd'):
            sub = _mean(expo[(expo['panel'] == panel) & (expo['parity'] == parity)],
                        ['depth'])
            for _, r in sub.iterrows():
                table.append({'panel': panel, 'depth': int(r['depth']),
                              'parity': parity, 'exponent': r['value']})
    if d is not None and values:
        # At least +-0.5 around -d: percent-level differences look so.
        low, high = min(min(values), -d - 0.5), max(max(values), -d + 0.5)
        axes[0][0].set_ylim(low - 0.05, high + 0.05)
    axes[0][0].set_ylabel(r'fitted exponent of $\lambda_l \sim l^{p}$')
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    paths = _save(fig, out_dir, 'sphere_exponents')
    if table:
        wide = (pd.DataFrame(table)
                .pivot_table(index=['panel', 'depth'], columns='parity',
                             values='exponent').reset_index())
        path = out_dir / 'sphere_exponents.csv'
        wide.to_csv(path, index=False, float_format='%.4f')
        paths.append(path)
    return paths


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws every figure whose rows are present; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = set(frame['metric'].dropna())
    paths: list[Path] = []
    stepped = ('step' in frame.columns and
               frame.loc[frame['metric'] == 'eigenvalue', 'step'].notna().any())
    if 'energy' in metrics or ('eigenvalue' in metrics and stepped):
        paths += _training_figures(frame[frame['metric'].isin(
            {'eigenvalue', 'energy', 'alignment', 'alignment_centered', 'loss',
             'accuracy',
             'ntk_change', 'ntk_distance_infinite'})
            & (frame['step'].notna() if 'step' in frame.columns else True)], out_dir)
    if metrics & {'pc_coefficient', 'pc_coordinate'}:
        paths += _pc_figures(frame, out_dir)
    if metrics & {'eigenvalue_normalized', 'decay_exponent', 'kernel_shape'}:
        paths += _sphere_figures(frame, out_dir)
    return paths
