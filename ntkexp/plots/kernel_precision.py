"""Figures of the ``kernel_precision`` experiment (Lee et al. 2020: floating
point precision and the critical dataset size; :mod:`ntkexp.float_noise`).

* ``precision``: one column per model, dataset and kernel. Top rows: the test
  accuracy against the training-set size for each kernel version (float64,
  float32, the float64 kernel rounded to ``b`` mantissa bits), one row per
  ``diag_reg``, with a dotted vertical line at each version's predicted
  critical size ``m*`` (where it falls inside the sizes). Bottom row: the
  float64 spectrum ``lambda_i / m`` (log-log), its power-law fit, and each
  version's noise floor ``sqrt(2 / m) sigma`` (eigenvalues below it are
  noise). Writes ``precision.csv``: per version, ``sigma``, the fit, the
  predicted ``critical_size``, and ``breaks_at``: the smallest size whose
  accuracy at the smallest ``diag_reg`` is more than ``BREAK_DROP`` below the
  float64 kernel's (empty if none). Regression targets (no accuracy rows)
  plot the test MSE instead, and break where it exceeds ``BREAK_MSE_RATIO``
  times float64's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp import float_noise
from ntkexp.plots import figures
from ntkexp.plots.kernel_regression import common as kr

# An accuracy this far below float64's at the same size counts as broken down.
BREAK_DROP = 0.05
# ... or, for regression targets, a test MSE this many times float64's.
BREAK_MSE_RATIO = 2.0
SETTING = ('model', 'dataset', 'kernel')
VERSION = ('mantissa_bits', 'rounding')


def version_label(bits: int, rounding: str) -> str:
    """``float64``, ``float32`` (computed), or ``b bits`` (rounded)."""
    bits = int(bits)
    if rounding == 'computed':
        return {52: 'float64', 23: 'float32'}.get(bits, f'{bits} bits computed')
    name = {23: ' (float32)', 10: ' (float16)', 7: ' (bfloat16)'}.get(bits, '')
    return f'{bits} bits rounded{name}'


def _style(bits: int, rounding: str, all_bits: list[int]) -> dict:
    plt = figures.pyplot()
    if rounding == 'computed':
        return dict(color='black' if int(bits) == 52 else 'tab:red',
                    ls='-' if int(bits) == 52 else '--', lw=1.6, marker='o', ms=3)
    rounded = sorted(all_bits, reverse=True)
    shade = rounded.index(int(bits)) / max(1, len(rounded) - 1)
    return dict(color=plt.get_cmap('viridis')(0.9 * shade), ls='-', lw=1.1,
                marker='.', ms=4)


def breaks_at(scores: pd.DataFrame, metric: str = 'accuracy') -> pd.Series:
    """Per version, the smallest training size whose accuracy is more than
    :data:`BREAK_DROP` below float64's at that size (for ``metric='mse'``: whose
    MSE is over :data:`BREAK_MSE_RATIO` times float64's); NaN if none.

    Args:
        scores: one setting's ``metric`` rows at one ``diag_reg``.
        metric: ``accuracy`` or ``mse``.
    """
    table = scores.groupby(list(VERSION) + ['train_size'])['value'].mean()
    reference = table.xs((52, 'computed'), level=VERSION)
    out = {}
    for version, series in table.groupby(level=list(VERSION)):
        series = series.droplevel(list(VERSION))
        ref = reference.reindex(series.index)
        worse = (series < ref - BREAK_DROP) if metric == 'accuracy' else \
            (series > BREAK_MSE_RATIO * ref)
        broken = series.index[worse.to_numpy()]
        out[version] = float(broken.min()) if len(broken) else math.nan
    return pd.Series(out)


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws ``precision.png`` / ``.pdf`` and writes ``precision.csv``.

    Args:
        frame: the experiment's long-format rows (``ntkexp collect``).
        out_dir: where the files go.

    Returns:
        The paths written (none without accuracy rows).
    """
    frame = frame.copy()
    for column in ('train_size', 'diag_reg', 'mantissa_bits', 'index'):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors='coerce')
    metric = 'accuracy' if (frame['metric'] == 'accuracy').any() else 'mse'
    accuracy = frame[frame['metric'] == metric]
    if accuracy.empty:
        return []
    for column in SETTING:
        if column not in frame.columns:
            frame[column] = ''
            accuracy = accuracy.assign(**{column: ''})
    settings = accuracy[list(SETTING)].drop_duplicates().sort_values(list(SETTING))
    regs = sorted(accuracy['diag_reg'].unique())
    all_bits = sorted({int(b) for b, r in accuracy[list(VERSION)].drop_duplicates()
                       .itertuples(index=False) if r == 'rounded'})
    fig, axes = kr.panels(len(regs) + 1, len(settings), 3.3, 2.6)
    table = []
    for col, setting in enumerate(settings.itertuples(index=False)):
        table += _setting_column([axes[row][col] for row in range(len(regs) + 1)],
                                 frame, accuracy, dict(zip(SETTING, setting)),
                                 regs, all_bits, metric)
    title = ('kernel regression with float64, float32 and rounded kernels against '
             'the training set size\n(dotted verticals: the critical sizes the noise '
             'model predicts; Lee et al. 2020)')
    return kr.finish_grid(fig, axes, title, Path(out_dir), 'precision', table)


def _setting_column(column_axes: list, frame: pd.DataFrame, accuracy: pd.DataFrame,
                    key: dict, regs: list, all_bits: list[int],
                    metric: str) -> list[dict]:
    """One setting's (model, kernel, dataset) column of panels: ``metric``
    against the training set size per ``diag_reg`` (each kernel version a
    line, its critical size dotted), then the spectrum; its table rows at
    the largest size and the smallest ``diag_reg``."""
    rows = kr.matching_rows(frame, key)
    acc = kr.matching_rows(accuracy, key)
    title = (f"{kr.MODEL_LABELS.get(key['model'], key['model'])} "
             f"{key['kernel'].upper()}, {key['dataset']}")
    fits = {m: float(rows.loc[rows['metric'] == m, 'value'].mean())
            for m in ('power_law_alpha', 'power_law_c')}
    sizes = np.array(sorted(acc['train_size'].unique()), float)
    noise = rows[rows['metric'] == 'noise_sigma'].groupby(list(VERSION))['value'].mean()
    critical = rows[rows['metric'] == 'critical_size'].groupby(
        list(VERSION))['value'].mean()
    broken = breaks_at(acc[acc['diag_reg'] == regs[0]], metric)
    versions = sorted(acc[list(VERSION)].drop_duplicates().itertuples(index=False),
                      key=lambda v: (v[1] != 'computed', -int(v[0])))
    for ax, reg in zip(column_axes, regs):
        for bits, rounding in versions:
            style = _style(bits, rounding, all_bits)
            line = acc[(acc['diag_reg'] == reg) & (acc['mantissa_bits'] == bits)
                       & (acc['rounding'] == rounding)]
            stats = line.groupby('train_size')['value'].mean()
            ax.plot(stats.index, stats.values, label=version_label(bits, rounding),
                    **style)
            m_star = critical.get((bits, rounding), math.nan)
            if sizes.size and sizes[0] <= m_star <= sizes[-1]:
                ax.axvline(m_star, color=style['color'], ls=':', lw=1)
        ax.set_xscale('log')
        if metric == 'accuracy':
            ax.set_ylim(0, 1.02)
        else:
            ax.set_yscale('log')
        ax.set_xlabel('training set size $m$')
        ax.set_ylabel(f"test {'accuracy' if metric == 'accuracy' else 'MSE'}, "
                      f'diag_reg {reg:g}')
        ax.set_title(title, fontsize=8)
    _spectrum_panel(column_axes[len(regs)], rows, fits, noise, all_bits, title)
    table = []
    for bits, rounding in versions:
        final = acc[(acc['diag_reg'] == regs[0]) & (acc['mantissa_bits'] == bits)
                    & (acc['rounding'] == rounding)
                    & (acc['train_size'] == sizes[-1])]['value'].mean()
        table.append(dict(key, version=version_label(bits, rounding),
                          mantissa_bits=int(bits), rounding=rounding,
                          sigma=noise.get((bits, rounding), math.nan),
                          power_law_alpha=fits['power_law_alpha'],
                          power_law_c=fits['power_law_c'],
                          critical_size=critical.get((bits, rounding), math.nan),
                          breaks_at=broken.get((bits, rounding), math.nan),
                          diag_reg=regs[0], train_size=int(sizes[-1]),
                          **{metric: final}))
    return table


def _spectrum_panel(ax, rows: pd.DataFrame, fits: dict[str, float],
                    noise: pd.Series, all_bits: list[int], title: str) -> None:
    """The float64 spectrum ``lambda_i / m``, its power-law fit ``C i^-alpha``
    and each version's noise floor (:func:`ntkexp.float_noise.noise_floor`)."""
    spectrum = rows[rows['metric'] == 'eigenvalue'].groupby('index')['value'].mean()
    if spectrum.empty:
        return
    m = int(rows.loc[rows['metric'] == 'eigenvalue', 'train_size'].max())
    ax.loglog(spectrum.index, spectrum.values, 'k.-', lw=1, ms=3,
              label='float64 spectrum $\\lambda_i/m$')
    if all(np.isfinite(list(fits.values()))):
        index = spectrum.index.to_numpy(float)
        ax.loglog(index, fits['power_law_c'] * index ** -fits['power_law_alpha'],
                  color='gray', ls='--', lw=1,
                  label='fit $C\\,i^{-\\alpha}$')
    for (bits, rounding), sigma in noise.items():
        if sigma > 0:
            ax.axhline(float_noise.noise_floor(sigma, m), lw=1, ls=':',
                       color=_style(bits, rounding, all_bits)['color'])
    ax.set_xlabel('eigenvalue index $i$')
    ax.set_ylabel('$\\lambda_i / m$; dotted: noise floors')
    ax.set_title(f"{title}: $\\alpha$ = {fits['power_law_alpha']:.2f}, "
                 f"C = {fits['power_law_c']:.2g}", fontsize=8)
