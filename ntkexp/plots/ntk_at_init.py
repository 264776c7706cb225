"""Figures of the ``ntk_at_init`` experiment (the worked example of
``docs/extending.md``).

* ``relative_distance``: ``||Theta_emp - Theta_inf||_F / ||Theta_inf||_F``
  of the empirical NTK at initialisation against the width, log-log, mean +-
  std over the initialisations (and seeds), one line per model with its
  fitted slope and the ``n^{-1/2}`` of Jacot et al. 2018, Theorem 1 (the
  empirical NTK is a sum over ``n`` independent units, so its fluctuations
  fall like ``1/sqrt(n)``); the fits go to ``relative_distance_slopes.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures
from ntkexp.plots import finite_width
from ntkexp.plots.rows import line_columns


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws ``relative_distance`` against the width.

    Args:
        frame: the experiment's long-format rows (``ntkexp collect``).
        out_dir: where the PNG / PDF files and the slopes CSV go.

    Returns:
        The paths written.
    """
    rows = frame[frame['metric'] == 'relative_distance']
    if rows.empty or 'width' not in rows.columns:
        return []
    rows = rows[rows['width'].notna()]
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    fits = finite_width.loglog_by_model(ax, rows)
    widths = np.array(sorted(rows['width'].unique()), float)
    if len(widths) > 1:
        # Through the highest line's widest point.
        groups = line_columns(rows)
        anchor = rows[rows['width'] == widths[-1]].groupby(
            groups, dropna=False)['value'].mean().max()
        ax.plot(widths, anchor * (widths / widths[-1]) ** -0.5, 'k--', lw=1,
                label=r'$\propto n^{-1/2}$ (Jacot et al. 2018, Thm. 1)')
        ax.plot([], [], ':', color='gray', lw=1, label='least-squares fits')
    ax.set_xticks(widths, [f'{w:g}' for w in widths])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    # Per line and width (the fewest and the most, where they differ).
    sizes = rows.groupby(line_columns(rows) + ['width'], dropna=False).size()
    draws = (f'{sizes.min()}' if sizes.min() == sizes.max()
             else f'{sizes.min()}-{sizes.max()}')
    ax.set_xlabel('width $n$')
    ax.set_ylabel(r'$\|\hat\Theta_0 - \Theta_\infty\|_F\,/\,\|\Theta_\infty\|_F$')
    ax.set_title(f'empirical NTK at initialisation vs infinite width\n'
                 f'(mean $\\pm$ std over {draws} initialisations per width)',
                 fontsize=9)
    ax.legend(fontsize=7)
    out_dir = Path(out_dir)
    paths = figures.save(fig, out_dir, 'relative_distance', dpi=110)
    table = out_dir / 'relative_distance_slopes.csv'
    pd.DataFrame(fits).to_csv(table, index=False)
    return paths + [table]
