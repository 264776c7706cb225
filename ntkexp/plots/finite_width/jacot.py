"""Jacot et al. 2018, Figs. 1 and 2: the empirical NTK on the circle at
initialisation and after training against the infinite-width NTK
(``ntk_slice``), and trained network functions against the percentiles of
the infinite-width Gaussian (``functions``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots.finite_width.common import (
    metric_rows, plain_rows, save_figure)


def plot_ntk_slice(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Jacot et al. 2018, Fig. 1: ``Theta(x0, x)`` at init and after training.

    Left: the slices (solid: first recorded step, dashed: last), one thin
    line per seed, and the infinite-width NTK; right: how much each seed's
    slice moved, ``Theta_T(x0, x) - Theta_0(x0, x)``, per width.
    """
    frame = plain_rows(frame)
    rows = metric_rows(frame, 'ntk_slice')
    if rows.empty:
        return []
    plt = figures.pyplot()
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    net = rows[rows['predictor'] == 'net']
    widths = sorted(net['width'].dropna().unique())
    steps = sorted(net['step'].dropna().unique())
    colors = plt.cm.plasma(np.linspace(0.1, 0.7, max(len(widths), 1)))
    for color, width in zip(colors, widths):
        for k, step in enumerate(steps):
            part = net[(net['width'] == width) & (net['step'] == step)]
            t = part['t'].iloc[0] if 't' in part.columns else step
            style = '-' if k == 0 else '--'
            for i, (_, line) in enumerate(part.groupby('seed')):
                line = line.sort_values('gamma')
                ax.plot(line['gamma'], line['value'], style, color=color,
                        lw=0.8, alpha=0.7,
                        label=f'$n={int(width)}$, $t={t:g}$' if i == 0 else None)
        if len(steps) >= 2:
            wrows = net[net['width'] == width]
            for i, (_, seed_rows) in enumerate(wrows.groupby('seed')):
                a = seed_rows[seed_rows['step'] == steps[0]].sort_values('gamma')
                b = seed_rows[seed_rows['step'] == steps[-1]].sort_values('gamma')
                if len(a) != len(b) or a.empty:
                    continue
                ax_d.plot(a['gamma'], b['value'].to_numpy() - a['value'].to_numpy(),
                          color=color, lw=1, alpha=0.8,
                          label=f'$n={int(width)}$' if i == 0 else None)
    inf = rows[rows['predictor'] == 'infinite']
    if not inf.empty:
        first = inf[inf['width'] == inf['width'].iloc[0]].sort_values('gamma')
        ax.plot(first['gamma'], first['value'], 'k-', lw=2,
                label=r'$n=\infty$')
    for a in (ax, ax_d):
        a.set_xlabel(r'$\gamma$  ($x = (\cos\gamma, \sin\gamma)$)')
    ax.set_ylabel(r'$\Theta^{(L)}(x_0, x)$, $x_0 = (1, 0)$')
    ax.set_title('NTK at initialisation (solid) and after training (dashed)',
                 fontsize=10)
    ax.legend(fontsize=8)
    if len(steps) >= 2:
        ax_d.axhline(0, color='k', lw=0.8)
        ax_d.set_ylabel(r'$\Theta_T(x_0, x) - \Theta_0(x_0, x)$')
        ax_d.set_title(f'change of the NTK from step {steps[0]:g} to '
                       f'{steps[-1]:g} (one line per seed)', fontsize=10)
        ax_d.legend(fontsize=8)
    else:
        ax_d.set_visible(False)
    paths = save_figure(fig, out_dir, f'{name}_ntk_slice')
    table = slice_change(rows)
    if not table.empty:
        path = out_dir / f'{name}_ntk_slice_change.csv'
        table.to_csv(path, index=False)
        paths.append(path)
    return paths


def slice_change(rows: pd.DataFrame) -> pd.DataFrame:
    """How far the NTK slice moves in training, and its distance to n = inf.

    Per width (mean and std over seeds): ``change`` = ``||S_T - S_0|| /
    ||S_0||`` between the first and last recorded step, and ``init_error`` =
    ``||S_0 - S_inf|| / ||S_inf||`` against the infinite-width slice.
    """
    net = rows[rows['predictor'] == 'net']
    inf = rows[rows['predictor'] == 'infinite']
    steps = sorted(net['step'].dropna().unique())
    if len(steps) < 2:
        return pd.DataFrame()
    out = []
    for width, part in net.groupby('width'):
        ref = inf[inf['width'] == width].sort_values('gamma')['value'].to_numpy()
        changes, errors = [], []
        for _, seed_rows in part.groupby('seed'):
            first = seed_rows[seed_rows['step'] == steps[0]].sort_values('gamma')
            last = seed_rows[seed_rows['step'] == steps[-1]].sort_values('gamma')
            a, b = first['value'].to_numpy(), last['value'].to_numpy()
            if len(a) == 0 or len(a) != len(b):
                continue
            changes.append(np.linalg.norm(b - a) / np.linalg.norm(a))
            if len(ref) == len(a):
                errors.append(np.linalg.norm(a - ref) / np.linalg.norm(ref))
        out.append(dict(width=width, steps=f'{steps[0]:g}->{steps[-1]:g}',
                        change=np.mean(changes), change_std=np.std(changes),
                        init_error=np.mean(errors) if errors else np.nan,
                        seeds=len(changes)))
    return pd.DataFrame(out)


def plot_functions(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Jacot et al. 2018, Fig. 2: trained functions vs the infinite Gaussian."""
    frame = plain_rows(frame)
    rows = metric_rows(frame, 'function')
    if rows.empty or 'gamma' not in rows.columns:
        return []
    plt = figures.pyplot()
    widths = sorted(rows['width'].dropna().unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(5 * len(widths), 3.8),
                             squeeze=False, sharey=True)
    perc = metric_rows(frame, 'ensemble_percentile')
    targets = metric_rows(frame, 'train_target')
    for ax, width in zip(axes[0], widths):
        part = rows[rows['width'] == width]
        for i, (_, line) in enumerate(part.groupby('seed')):
            line = line.sort_values('gamma')
            ax.plot(line['gamma'], line['value'], color='tab:blue', lw=0.8,
                    alpha=0.7, label=f'$n={int(width)}$' if i == 0 else None)
        wp = perc[perc['width'] == width] if not perc.empty else perc
        for q, line in wp.groupby('percentile'):
            line = line.sort_values('gamma')
            ax.plot(line['gamma'], line['value'], 'k--' if q != 50 else 'k-',
                    lw=1.2, label=f'$n=\\infty$, P{q:g}')
        wt = targets[targets['width'] == width] if not targets.empty else targets
        if not wt.empty and 'gamma' in wt.columns:
            ax.plot(wt['gamma'], wt['value'], 'o', color='tab:red', ms=6,
                    label='training points')
        t = part['t'].iloc[0] if 't' in part.columns else None
        ax.set_title(f'width $n={int(width)}$' +
                     (f', $t={t:g}$' if t is not None else ''))
        ax.set_xlabel(r'$\gamma$  ($x = (\cos\gamma, \sin\gamma)$)')
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(r'$f_\theta(x)$')
    paths = save_figure(fig, out_dir, f'{name}_functions')
    coverage = percentile_coverage(rows, perc, metric_rows(frame, 'ensemble_mean'),
                                   metric_rows(frame, 'ensemble_std'))
    if not coverage.empty:
        table = out_dir / f'{name}_functions_coverage.csv'
        coverage.to_csv(table, index=False)
        paths.append(table)
    return paths


def percentile_coverage(functions: pd.DataFrame, percentiles: pd.DataFrame,
                        mean: pd.DataFrame | None = None,
                        std: pd.DataFrame | None = None) -> pd.DataFrame:
    """How the trained networks sit in the infinite-width Gaussian.

    Per width: ``inside``, the fraction of network outputs (over seeds and
    test points) between the lowest and highest percentile (about 0.8 for
    the 10th / 90th if the networks were distributed like the Gaussian,
    Jacot et al. 2018, Fig. 2), the nominal ``expected`` fraction, and
    ``mean_z2``, the mean of ``((f - mean) / std)^2`` over points with
    ``std > 1e-3`` (1 for the Gaussian).
    """
    if percentiles.empty or functions.empty:
        return pd.DataFrame()
    out = []
    for width, part in functions.groupby('width'):
        wp = percentiles[percentiles['width'] == width]
        if wp.empty:
            continue
        low_q, high_q = wp['percentile'].min(), wp['percentile'].max()
        if low_q == high_q:
            continue
        bounds = wp.pivot_table(index=['index', 'output'], columns='percentile',
                                values='value')
        joined = part.join(bounds, on=['index', 'output'])
        inside = ((joined['value'] >= joined[low_q]) &
                  (joined['value'] <= joined[high_q]))
        entry = dict(width=width, inside=float(inside.mean()),
                     expected=(high_q - low_q) / 100,
                     seeds=part['seed'].nunique(), points=len(part))
        if mean is not None and std is not None and not mean.empty:
            stats = pd.DataFrame({
                'mu': mean[mean['width'] == width].set_index(
                    ['index', 'output'])['value'],
                'sigma': std[std['width'] == width].set_index(
                    ['index', 'output'])['value']})
            z = part.join(stats, on=['index', 'output'])
            z = z[z['sigma'] > 1e-3]
            entry['mean_z2'] = float((((z['value'] - z['mu']) / z['sigma'])
                                      ** 2).mean())
        out.append(entry)
    return pd.DataFrame(out)
