"""The headline numbers of the READMEs of ``results/nth/``,
``results/resnet-ntk/`` and ``results/resnet-ntk-alpha/``, recomputed from the
tables and figure CSVs committed in those folders.

Each claim writes a piece of README text from the tables (rounded half up, as
the READMEs round; line breaks do not count), and the README must contain it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from readme_claims import (
    RESULTS, assert_readme_says, fixed, one, signed, significant, significant_span, span,
    table, where)

from ntkexp import ntk_drift
from ntkexp.plots import drift_tables
from ntkexp.plots.rows import last_step

NTH = RESULTS / 'nth' / 'README.md'
RESNET = RESULTS / 'resnet-ntk' / 'README.md'
ALPHA = RESULTS / 'resnet-ntk-alpha' / 'README.md'

TERMS = ('from_y', 'from_f0', 'from_f0_squared')
GROUPS = ntk_drift.LEAF_GROUPS  # input, hidden layers (or branches), readout


# --- Formatting and selecting ----------------------------------------------------------

def two_places(value: float) -> str:
    """Two decimals, or two significant figures below 0.1 (0.51, 0.072)."""
    return fixed(value, 2) if abs(value) >= 0.1 else significant(value, 2)


def pick(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    """:func:`readme_claims.where`, with ``None`` selecting the rows where the
    column is NaN."""
    for column, value in columns.items():
        frame = frame[frame[column].isna() if value is None else frame[column] == value]
    assert not frame.empty, columns
    return frame


def means(frame: pd.DataFrame, metric: str, **columns) -> pd.Series:
    """A figure CSV's ``mean`` of ``metric`` by width."""
    return pick(frame, metric=metric, **columns).set_index('width')['mean']


# --- The Neural Tangent Hierarchy (results/nth/) ---------------------------------------

def _nth(folder: str = '', **columns) -> pd.DataFrame:
    """``nth_nth.csv`` of ``results/nth/<folder>``: means over seeds."""
    return pick(table(f'nth/{folder}figures/nth/nth_nth.csv'), **columns)


def _nth_slopes(folder: str = '', **line) -> pd.DataFrame:
    """``nth_nth_slopes.csv`` of one line, by metric."""
    return pick(table(f'nth/{folder}figures/nth/nth_nth_slopes.csv'), **line).set_index('metric')


def _erf(model: str, step: int = 100, folder: str = '') -> pd.DataFrame:
    return _nth(folder, model=model, activation='erf', step=step)


def _nth_row(net: str, model: str, activation: str, widest: bool = False) -> str:
    """A row of the results table (after 100 steps, widths 64-512)."""
    rows = _nth(model=model, activation=activation, step=100)
    slopes = _nth_slopes(model=model, activation=activation)

    def slope(metric: str, with_widest: bool = False) -> str:
        text = signed(slopes.loc[metric, 'slope'], 2)
        if with_widest:
            text += f'; 3 widest {signed(slopes.loc[metric, "slope_3_widest"], 2)}'
        return f'({text})'

    def change(metric: str) -> str:
        values = means(rows, metric)
        return f'{fixed(values[64], 3)} -> {fixed(values[512], 3)} {slope(metric)}'

    def per_width(metric: str) -> str:
        values = ' / '.join(two_places(v) for v in means(rows, metric).sort_index())
        return f'{values} {slope(metric, widest)}'

    cells = [change('ntk_drift'), change('nth_drift'),
             f'{span(means(rows, "nth_residual"), 2)} {slope("nth_residual")}',
             change('nth2_drift'), per_width('nth2_residual'), per_width('taylor2_residual')]
    return f'| {net} | ' + ' | '.join(cells) + ' |'


def nth_table_erf() -> str:
    return '\n'.join([_nth_row('FC erf', 'fc', 'erf'),
                      _nth_row('ResNet erf', 'resnet', 'erf', widest=True)])


def nth_table_relu() -> str:
    return '\n'.join([_nth_row('FC ReLU', 'fc', 'relu'),
                      _nth_row('ResNet ReLU', 'resnet', 'relu')])


def nth_k3_cosine() -> str:
    rows = _nth(step=100, metric='nth_cosine')
    odd = (rows['model'] == 'resnet') & (rows['activation'] == 'erf') & (rows['width'] == 256)
    off, rest = rows[odd].iloc[0], rows[~odd]
    return (f'Its cosine with the actual change is {span(rest["mean"], 2)} at every width and '
            f'net after 100 steps ({span(where(rest, activation="erf")["mean"], 2)} for the '
            'erf nets). The one exception is the ResNet erf at width 256, at '
            f'{fixed(off["mean"], 2)} +- {fixed(off["std"], 2)}')


def nth_k3_overshoot() -> str:
    def overshoot(model: str) -> str:
        rows = _erf(model)
        return span(means(rows, 'nth_drift') / means(rows, 'ntk_drift'), 1)

    def residual(model: str) -> str:
        return span(means(_erf(model), 'nth_residual'), 1)

    def slope(model: str) -> str:
        return signed(_nth_slopes(model=model, activation='erf').loc['nth_residual', 'slope'], 2)

    return (f'But it overshoots the change by {overshoot("fc")}x (FC erf) and '
            f'{overshoot("resnet")}x (ResNet erf). - So its residual stays at '
            f'{residual("fc")} (FC) and {residual("resnet")} (ResNet) from width 64 to 512. '
            f'The fitted slopes are {slope("fc")} and {slope("resnet")}.')


def nth_k4_size() -> str:
    def at_512(model: str, metric: str) -> float:
        return means(_erf(model), metric)[512]

    fc, resnet = (at_512(m, 'nth2_drift') for m in ('fc', 'resnet'))
    fc_change, resnet_change = (at_512(m, 'ntk_drift') for m in ('fc', 'resnet'))
    fc_k3, resnet_k3 = (at_512(m, 'nth_drift') for m in ('fc', 'resnet'))
    return (f'(FC erf {fixed(fc, 3)} against {fixed(fc_change, 3)}, ResNet erf '
            f"{fixed(resnet, 3)} against {fixed(resnet_change, 3)}): the `K3` term's "
            f'{fixed(fc_k3 / fc_change, 1)}x and {fixed(resnet_k3 / resnet_change, 1)}x '
            'overshoot is gone')


def nth_after_25_steps() -> str:
    def residuals(model: str, metric: str) -> pd.Series:
        return means(_erf(model, step=25), metric)

    return (f'after 25 steps {span(residuals("fc", "nth2_residual"), 2)} against '
            f'{span(residuals("fc", "taylor2_residual"), 2)} (FC erf) and '
            f'{significant_span(residuals("resnet", "nth2_residual"))} against '
            f'{significant_span(residuals("resnet", "taylor2_residual"))} (ResNet erf)')


def nth_second_order() -> str:
    def residuals(model: str, step: int, metric: str) -> pd.Series:
        return means(_erf(model, step), metric)

    return (f'After one step it leaves {significant_span(residuals("fc", 1, "taylor2_residual"))}'
            f' (FC erf) and {span(residuals("resnet", 1, "taylor2_residual"), 3)} (ResNet '
            'erf). - The first-order `D Theta[d]` alone leaves '
            f'{span(residuals("fc", 100, "taylor1_residual"), 2)} (FC erf) and '
            f'{span(residuals("resnet", 100, "taylor1_residual"), 2)} (ResNet erf) after 100 '
            'steps.')


def nth_relu() -> str:
    rows = _nth(step=100, activation='relu')

    def slope(model: str) -> str:
        return signed(_nth_slopes(model=model, activation='relu')
                      .loc['taylor2_residual', 'slope'], 2)

    def ends(model: str) -> str:
        values = means(rows, 'nth2_residual', model=model)
        return f'{fixed(values[64], 2)} -> {fixed(values[512], 2)}'

    return (f'`taylor2` leaves {span(means(rows, "taylor2_residual", model="fc"), 2)} (FC) and '
            f'{span(means(rows, "taylor2_residual", model="resnet"), 2)} (ResNet) at every '
            f'width, with slopes {slope("fc")} and {slope("resnet")}, and `nth2` leaves more '
            f'the wider the net ({ends("fc")} FC, {ends("resnet")} ResNet)')


def nth_actual_change() -> str:
    def exponent(model: str, activation: str) -> str:
        slopes = _nth_slopes(model=model, activation=activation)
        return fixed(slopes.loc['ntk_drift', 'slope'], 2)

    fc_relu = one(table('resnet-ntk/figures/ntk_drift/ntk_drift_ntk_drift_slopes.csv'),
                  'slope', model='fc')
    return (f'It falls as `n^{exponent("fc", "erf")}` (FC erf), '
            f'`n^{exponent("resnet", "erf")}` (ResNet erf), `n^{exponent("fc", "relu")}` '
            f'(FC ReLU) and `n^{exponent("resnet", "relu")}` (ResNet ReLU). The `1/n` of '
            "Dyer & Gur-Ari fits the ResNets. The FC nets' slope is shallower over widths "
            f'64-512; `results/resnet-ntk/` had {fixed(fc_relu, 2)} for FC ReLU')


def nth_early_steps() -> str:
    first = _nth(step=1, activation='erf')
    k3 = _nth(step=25, model='fc', metric='nth_residual')
    erf = k3[(k3['activation'] == 'erf') & (k3['width'] >= 128)]

    def residuals(metric: str, model: str) -> pd.Series:
        return means(first, metric, model=model)

    return (f'`taylor1` leaves {span(residuals("taylor1_residual", "fc"), 2)} (FC) and '
            f'{span(residuals("taylor1_residual", "resnet"), 2)} (ResNet); `taylor2` leaves '
            f'{span(residuals("taylor2_residual", "fc"), 2)} and '
            f'{span(residuals("taylor2_residual", "resnet"), 3)}. - For the FC nets the `K3` '
            "term's residual is smallest after 5-25 steps and grows again by step 100 (erf at "
            f'widths 128-512: {span(erf["mean"], 2)} after 25 steps; ReLU: '
            f'{span(where(k3, activation="relu")["mean"], 2)})')


def _wide_row(net: str, model: str) -> str:
    """A row of the width-1024 table: widths 512 and 1024, slopes over 64-1024."""
    rows = _erf(model, folder='wide/')
    slopes = _nth_slopes('wide/', model=model, activation='erf')

    def both(metric: str) -> str:
        return (f'{signed(slopes.loc[metric, "slope"], 2)}; '
                f'{signed(slopes.loc[metric, "slope_3_widest"], 2)}')

    change, nth2, taylor2 = (means(rows, m) for m in (
        'ntk_drift', 'nth2_residual', 'taylor2_residual'))
    nth2_std = one(rows, 'std', metric='nth2_residual', width=1024)
    cells = [f'{significant(change[512])} -> {significant(change[1024])} '
             f'({signed(slopes.loc["ntk_drift", "slope"], 2)})',
             significant(means(rows, 'nth_drift')[1024]),
             f'{fixed(means(rows, "nth_residual")[1024], 2)} '
             f'(slope {signed(slopes.loc["nth_residual", "slope"], 2)})',
             significant(means(rows, 'nth2_drift')[1024]),
             f'{fixed(nth2[512], 3)} -> {fixed(nth2[1024], 3)} +- {fixed(nth2_std, 3)} '
             f'({both("nth2_residual")})',
             f'{fixed(taylor2[512], 3)} -> {fixed(taylor2[1024], 3)} ({both("taylor2_residual")})']
    return f'| {net} | ' + ' | '.join(cells) + ' |'


def nth_wide_table() -> str:
    return '\n'.join([_wide_row('FC erf', 'fc'), _wide_row('ResNet erf', 'resnet')])


def nth_wide_fc() -> str:
    rows = _erf('fc', folder='wide/')
    at_1024 = where(rows, width=1024).set_index('metric')['mean']
    nth2 = means(rows, 'nth2_residual')
    within = 100 * abs(at_1024['nth2_drift'] / at_1024['ntk_drift'] - 1)
    return (f"the `K3` term's residual stays at {fixed(at_1024['nth_residual'], 2)} (its "
            f"cosine with the change is {fixed(at_1024['nth_cosine'], 2)}), the hierarchy to "
            f"`K4` predicts the change's size within {fixed(within, 0)}% "
            f"({significant(at_1024['nth2_drift'])} against {significant(at_1024['ntk_drift'])})"
            f' and its residual falls again, {fixed(nth2[512], 3)} -> {fixed(nth2[1024], 3)}, '
            'about as the expansion along the actual displacement does '
            f"({fixed(at_1024['taylor2_residual'], 3)})")


def _per_seed(frame: pd.DataFrame, width: int) -> pd.Series:
    """The ResNet erf's ``nth2`` residual after 100 steps, seed by seed."""
    rows = pick(frame, model='resnet', activation='erf', metric='nth2_residual', step=100,
                width=width)
    assert not rows['seed'].duplicated().any()
    return rows.set_index('seed')['value'].sort_index()


def nth_wide_resnet() -> str:
    rows = _erf('resnet', folder='wide/')
    nth2 = means(rows, 'nth2_residual')
    seeds_512 = _per_seed(table('nth/table.parquet'), 512)
    seeds_1024 = _per_seed(table('nth/wide/table.parquet'), 1024)
    return (f"({significant(means(rows, 'nth2_drift')[1024])} against "
            f"{significant(means(rows, 'ntk_drift')[1024])}), but its residual stops falling: "
            f'{fixed(nth2[512], 3)} at width 512 and {fixed(nth2[1024], 3)} at 1024. Per seed '
            f'it is {", ".join(fixed(v, 3) for v in seeds_512)} at 512 and '
            f'{", ".join(fixed(v, 3) for v in seeds_1024)} at 1024')


def _all_seeds(width: int) -> pd.Series:
    """:func:`_per_seed` over the study's three tables (widths 64-512, width
    1024, the extra seeds)."""
    frames = [table(f'nth/{folder}table.parquet') for folder in ('', 'wide/', 'seeds/')]
    return _per_seed(pd.concat(frames), width)


def nth_seeds_table() -> str:
    stats = _erf('resnet', folder='seeds/')
    lines = []
    for width in (512, 1024):
        seeds = _all_seeds(width)
        groups = [', '.join(fixed(v, 3) for v in seeds.loc[first:first + 2])
                  for first in (0, 3, 6)]
        row = where(stats, metric='nth2_residual', width=width).iloc[0]
        assert row['count'] == len(seeds) == 9
        lines.append(f'| {width} | ' + ' | '.join(groups) + f' | {fixed(row["median"], 3)} | '
                     f'{fixed(row["mean"], 3)} +- {fixed(row["std"], 3)} |')
    return '\n'.join(lines)


def nth_seeds_test() -> str:
    stats = where(_erf('resnet', folder='seeds/'), metric='nth2_residual').set_index('width')
    narrow, wide = _all_seeds(512), _all_seeds(1024)
    test = scipy.stats.mannwhitneyu(wide, narrow, alternative='less')
    halving = math.log2(stats.loc[1024, 'median'] / stats.loc[512, 'median'])
    below = int((wide < stats.loc[512, 'median']).sum())
    slopes = _nth_slopes('seeds/', model='resnet', activation='erf').loc['nth2_residual']
    return (f'From 512 to 1024 the median halves ({fixed(stats.loc[512, "median"], 3)} -> '
            f'{fixed(stats.loc[1024, "median"], 3)}, slope {fixed(halving, 1)}) and the '
            f'mean falls by a third ({fixed(stats.loc[512, "mean"], 3)} -> '
            f'{fixed(stats.loc[1024, "mean"], 3)}). {below} of the {len(wide)} seeds at 1024 '
            'lie below the median at 512. A one-sided Mann-Whitney test of 1024 against 512 '
            f'gives p = {fixed(test.pvalue, 3)} (`scipy.stats.mannwhitneyu`, U = '
            f'{fixed(test.statistic, 1)}). The fitted slope over 64-1024 is '
            f'{fixed(slopes["slope"], 2)}, and {fixed(slopes["slope_3_widest"], 2)} over the '
            f'three widest ({int(slopes["points"])} points')


def nth_seeds_rest() -> str:
    rows = _erf('resnet', folder='seeds/')
    slopes = _nth_slopes('seeds/', model='resnet', activation='erf')
    taylor2, k3, change, k4 = (means(rows, m) for m in (
        'taylor2_residual', 'nth_residual', 'ntk_drift', 'nth2_drift'))
    return (f'`taylor2` falls {fixed(taylor2[512], 3)} -> {fixed(taylor2[1024], 3)} (mean; '
            f'slopes {fixed(slopes.loc["taylor2_residual", "slope"], 2)} and '
            f'{fixed(slopes.loc["taylor2_residual", "slope_3_widest"], 2)}). - The `K3` '
            f"term's residual stays at {span(k3[[512, 1024]], 2)} (slope "
            f'{signed(slopes.loc["nth_residual", "slope"], 2)}). - The actual change falls '
            f'{fixed(change[512], 4)} -> {fixed(change[1024], 4)}, slope '
            f'{fixed(slopes.loc["ntk_drift", "slope"], 2)}. The `K4` truncation\'s change, '
            f'{fixed(k4[512], 4)} and {fixed(k4[1024], 4)}')


#: The runs of results/nth/optimizers/: README label -> their columns.
OPTIMIZER_RUNS = {
    'momentum, same effective rate': {'optimizer': 'momentum', 'lr_fraction': 0.0263},
    'momentum, half its own bound': {'optimizer': 'momentum', 'lr_fraction': None},
    'cross-entropy': {'loss': 'xent'},
}


def _run(run: str, step: int = 100) -> pd.DataFrame:
    return _nth('optimizers/', step=step, **OPTIMIZER_RUNS[run])


def nth_optimizers_table() -> str:
    lines = []
    for run, columns in OPTIMIZER_RUNS.items():
        rows, slopes = _run(run), _nth_slopes('optimizers/', **columns)
        change, nth2, taylor2 = (means(rows, m) for m in (
            'ntk_drift', 'nth2_residual', 'taylor2_residual'))
        slope = {m: f'({signed(slopes.loc[m, "slope"], 2)})' for m in slopes.index}
        cells = [f'{fixed(change[64], 3)} -> {fixed(change[512], 3)} {slope["ntk_drift"]}',
                 f'{span(means(rows, "nth_residual"), 2)} {slope["nth_residual"]}',
                 ' / '.join(two_places(v) for v in nth2.sort_index())
                 + f' {slope["nth2_residual"]}',
                 fixed(means(rows, 'nth2_drift')[512], 3),
                 f'{two_places(taylor2[64])} -> {two_places(taylor2[512])} '
                 f'{slope["taylor2_residual"]}']
        lines.append(f'| {run} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def nth_momentum() -> str:
    rows, big = _run('momentum, same effective rate'), _run('momentum, half its own bound')
    first = _run('momentum, half its own bound', step=1)
    nth2, taylor2 = means(rows, 'nth2_residual'), means(big, 'taylor2_residual')
    size = means(rows, 'nth2_drift')[512] / means(rows, 'ntk_drift')[512]
    return (f"the `K3` term points the right way (cosine {span(means(rows, 'nth_cosine'), 2)}) "
            f"but its residual stays at {span(means(rows, 'nth_residual'), 2)}, and the "
            f'hierarchy to `K4` falls with width ({fixed(nth2[64], 2)} -> {fixed(nth2[512], 2)}) '
            f"and gets the change's size within {fixed(100 * (size - 1), 0)}% at width 512. - "
            '**Momentum at half its own bound** is not perturbative at these widths: the NTK '
            f"moves by {span(means(big, 'ntk_drift'), 2)} of itself and the first step alone "
            f"leaves {span(means(first, 'taylor1_residual'), 1)} to the first-order term. The "
            'hierarchy to `K4` misses more than the change itself at every width '
            f"({span(means(big, 'nth2_residual'), 1)}; it predicts "
            f"{fixed(means(big, 'nth2_drift')[512], 2)} where the change is "
            f"{fixed(means(big, 'ntk_drift')[512], 2)} at width 512), the second-order "
            'expansion along the actual displacement at widths 64-256 '
            f'({span(taylor2[taylor2.index <= 256], 1)}; {fixed(taylor2[512], 2)} at 512); only '
            f"the `K3` term stays at {span(means(big, 'nth_residual'), 2)}")


def nth_cross_entropy() -> str:
    first = _run('cross-entropy', step=1)
    both = first[first['metric'].isin(['nth2_residual', 'taylor2_residual'])]['mean']
    rows = _run('cross-entropy')
    cosine = where(rows, metric='nth_cosine')
    nth2, taylor2 = means(rows, 'nth2_residual'), means(rows, 'taylor2_residual')
    size = means(rows, 'nth2_drift')[512] / means(rows, 'ntk_drift')[512]
    return (f"(`nth2` and `taylor2` leave {span(both, 3)}, the `K3` term's cosine is "
            f"{span(means(first, 'nth_cosine'), 2)}). Later the `K3` term comes apart "
            'from the change: its cosine falls to '
            f"{span(means(_run('cross-entropy', step=25), 'nth_cosine'), 2)} after 25 steps and "
            f'to {span(cosine["mean"], 2)} after 100 (std {span(cosine["std"], 2)} over seeds), '
            'so it predicts worse than no change (residual '
            f"{span(means(rows, 'nth_residual'), 1)}). The hierarchy to `K4` falls with width "
            f'({fixed(nth2[64], 2)} -> {fixed(nth2[512], 2)}) about as the expansion along the '
            f'actual displacement does ({fixed(taylor2[64], 2)} -> {fixed(taylor2[512], 2)}), '
            f"and overshoots the change's size by {fixed(100 * (size - 1), 0)}% at width 512")


# --- ResNets against FC nets (results/resnet-ntk/) -------------------------------------

def _resnet_drift(metric: str) -> pd.DataFrame:
    """Mean and std over seeds at the last step, per model and width."""
    rows = last_step(where(table('resnet-ntk/table.parquet'), experiment='ntk_drift',
                           metric=metric))
    return rows.groupby(['model', 'width'])['value'].agg(['mean', 'std']).reset_index()


def _resnet_slopes() -> pd.DataFrame:
    return table('resnet-ntk/figures/ntk_drift/ntk_drift_ntk_drift_slopes.csv')


def resnet_drift_table() -> str:
    drift, weights, slopes = (_resnet_drift('ntk_drift'), _resnet_drift('weight_change'),
                              _resnet_slopes())
    nets = ('fc', 'resnet')
    lines = []
    for width in sorted(drift['width'].unique()):
        cells = [f'{fixed(one(drift, "mean", model=m, width=width), 3)} +- '
                 f'{fixed(one(drift, "std", model=m, width=width), 3)}' for m in nets]
        cells += [significant(one(weights, 'mean', model=m, width=width)) for m in nets]
        lines.append(f'| {width} | ' + ' | '.join(cells) + ' |')
    fit = [fixed(one(slopes, 'slope', model=m), 2) for m in nets]
    widest = [fixed(one(slopes, 'slope_3_widest', model=m), 2) for m in nets]
    lines.append(f'| **fitted slope** (all {int(slopes["points"].iloc[0])} points) | '
                 f'**{fit[0]}** | **{fit[1]}** | | |')
    lines.append(f'| fitted slope (3 widest widths) | {widest[0]} | {widest[1]} | | |')
    return '\n'.join(lines)


def resnet_drift_ratio() -> str:
    drift = _resnet_drift('ntk_drift').pivot(index='width', columns='model', values='mean')
    assert (drift['resnet'] < drift['fc']).all()  # "at every width"
    widest = drift.index.max()
    return (f"the ResNet's kernel moves less than the FC net's at every width "
            f"({fixed(drift.loc[widest, 'fc'] / drift.loc[widest, 'resnet'], 1)}x at "
            f'n = {widest})')


def resnet_alpha_sweep() -> str:
    plain = _alpha_drift('ntk_drift', normalize=False)
    centred = _alpha_drift('ntk_drift_centered', normalize=True)
    return (f'the drift at width 1024 rises from {significant(plain[0])} (alpha 0, the '
            f'two-layer linear net) to {significant(plain[0.5])} (0.5), '
            f'{significant(plain[1])} (1) and {significant(plain[2])} (2), but this ResNet\'s '
            'output also grows with alpha; with it held fixed (`model.normalize=true`, centred '
            f'nets) the drift still rises, {significant(centred[0])} -> '
            f'{significant(centred[0.5])} (0.5) -> {fixed(centred[2], 3)} (2), with the FC '
            f"net's {fixed(_alpha_fc('ntk_drift_centered'), 3)} between alpha 0.5 and 1")


def resnet_seed_spread() -> str:
    drift = _resnet_drift('ntk_drift')
    most = drift.loc[drift['mean'].idxmax()]
    slopes = _resnet_slopes()
    return (f'(drift up to {fixed(most["mean"], 2)} at n = {most["width"]}: no longer the lazy '
            'regime); the slopes over the three widest widths, '
            f'{fixed(one(slopes, "slope_3_widest", model="fc"), 2)} and '
            f'{fixed(one(slopes, "slope_3_widest", model="resnet"), 2)}, are the cleaner')


def resnet_accuracy() -> str:
    rows = table('resnet-ntk/figures/ntk_drift/ntk_drift_width_accuracy.csv')
    return ('Test accuracy of the trained nets on 64 test digits: '
            f'{span(where(rows, model="fc")["final"], 2)} (FC), '
            f'{span(where(rows, model="resnet")["final"], 2)} (ResNet) across widths')


def _exponents() -> pd.DataFrame:
    """The fitted decay exponents (unrounded, unlike ``sphere_exponents.csv``)."""
    return where(table('resnet-ntk/table.parquet'), metric='decay_exponent')


def resnet_spectrum_table() -> str:
    rows = _exponents()
    lines = []
    for depth in sorted(rows['depth'].unique()):
        at = where(rows, depth=depth)
        cells = [fixed(one(where(at, model='fc'), parity='all'), 3)]
        for alpha in (0.1, 0.5, 1.0):
            net = where(at, model='resnet', alpha=alpha)
            even = ' (even l)' if np.isnan(one(net, parity='odd')) else ''
            cells.append(fixed(one(net, parity='all'), 3) + even)
        lines.append(f'| {int(depth)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def resnet_spectrum_range() -> str:
    values = where(_exponents(), parity='all')['value']
    return (f'All exponents lie between {fixed(values.max(), 2)} and {fixed(values.min(), 2)}, '
            'close to `-d = -3`')


# --- The residual-branch scale alpha (results/resnet-ntk-alpha/) -----------------------

def _alpha(path: str) -> pd.DataFrame:
    return table(f'resnet-ntk-alpha/{path}')


def _alpha_drift(metric: str, normalize: bool) -> pd.Series:
    """The alpha sweep's mean over seeds at width 1024, by alpha."""
    rows = where(_alpha('figures/ntk_drift/ntk_drift_ntk_drift_alpha.csv'), width=1024,
                 metric=metric, normalize=normalize)
    return rows.set_index('alpha')['mean']


def _alpha_runs(folder: str = '') -> pd.DataFrame:
    """The last step's drift rows (and their scale and shape parts) at width
    1024: of the alpha sweep (``experiment=ntk_drift``), or of ``folder``."""
    rows = _alpha(f'{folder}table.parquet')
    if not folder:
        rows = where(rows, experiment='ntk_drift')
    return where(drift_tables.drift_rows(rows), width=1024)


def _alpha_fc(metric: str) -> float:
    """The FC net's mean over seeds at width 1024 (its row of the alpha table)."""
    return where(_alpha_runs(), model='fc', metric=metric)['value'].mean()


def _alpha_last(metric: str, **columns) -> pd.Series:
    """The sweep's ResNets' ``metric`` at the last step and width 1024, mean
    over seeds by alpha."""
    rows = where(_alpha('table.parquet'), experiment='ntk_drift', metric=metric, width=1024,
                 model='resnet')
    return where(last_step(rows), **columns).groupby('alpha')['value'].mean()


def _scale(alpha: float) -> float:
    """``s = (1 + alpha^2)^(depth / 2)``: the plain net over the normalised one."""
    slopes = where(_alpha('figures/ntk_drift/ntk_drift_ntk_drift_slopes.csv'), model='resnet')
    (depth,) = slopes['depth'].unique()
    return (1 + alpha ** 2) ** (depth / 2)


def alpha_setting() -> str:
    rows = where(_alpha('table.parquet'), experiment='ntk_drift', metric='train_loss',
                 step=0.0, predictor='net', model='resnet')
    error = rows.groupby(['normalize', 'alpha'])['value'].mean()
    plain = error[False]
    return (f"the initial outputs' error is {span(error[True], 2)} at every alpha, where the "
            "plain ResNet's grows as `(1 + alpha^2)^4` "
            f'({significant(plain[0])} at alpha 0, {significant(plain[0.5])} at 0.5, '
            f'{significant(plain[1])} at 1, {significant(plain[2])} at 2)')


def alpha_table() -> str:
    columns = [('ntk_drift', False), ('ntk_drift_centered', False),
               ('ntk_drift', True), ('ntk_drift_centered', True)]
    drifts = [_alpha_drift(*column) for column in columns]
    lines = []
    for alpha in drifts[0].index:
        cells = [fixed(d[alpha], 4 if d[alpha] < 0.1 else 3) for d in drifts]
        scale = _scale(alpha)
        cells.append(fixed(scale, 0) if scale.is_integer() else fixed(scale, 2))
        lines.append(f'| {alpha:g} | ' + ' | '.join(cells) + ' |')
    fc = [fixed(_alpha_fc(m), 3) for m in ('ntk_drift', 'ntk_drift_centered')]
    lines.append(f'| FC net | {fc[0]} | {fc[1]} | | | |')
    return '\n'.join(lines)


def alpha_plain() -> str:
    drift = _alpha_drift('ntk_drift', normalize=False)
    repeated = where(_resnet_drift('ntk_drift'), model='resnet').set_index('width')['mean']
    alpha_half = where(_alpha('figures/ntk_drift/ntk_drift_ntk_drift_alpha.csv'),
                       metric='ntk_drift', normalize=False, alpha=0.5).set_index('width')['mean']
    np.testing.assert_allclose(alpha_half, repeated, rtol=1e-12)  # "exactly"
    assert drift[0.5] < _alpha_fc('ntk_drift') < drift[1]
    loss, accuracy = (_alpha_last(m, normalize=False, predictor='net')
                      for m in ('train_loss', 'test_accuracy'))
    lr = where(_alpha('table.parquet'), experiment='ntk_drift', metric='lr', model='resnet',
               normalize=False).groupby('alpha')['value'].mean()
    return (f'the drift rises with alpha**, {fixed(drift[2] / drift[0], 0)}x from alpha 0 to '
            f"2, and the FC net's {fixed(_alpha_fc('ntk_drift'), 3)} lies between alpha 0.5 "
            "and 1. The run at alpha 0.5 repeats `results/resnet-ntk/`'s ResNet numbers "
            'exactly. But at alpha 1 and 2 that net is barely trained (train loss '
            f'{two_places(loss[1])} and {two_places(loss[2])} after 100 steps, test accuracy '
            f'{two_places(accuracy[1])} and {two_places(accuracy[2])}, against '
            f'{two_places(loss[0.5])} and {two_places(accuracy[0.5])} at alpha 0.5): its '
            f'initial function is `s` = {fixed(_scale(1), 0)} and {fixed(_scale(2), 0)} times '
            f"the normalised net's, its learning rate {significant(lr[0.5] / lr[1])} and "
            f'{significant(lr[0.5] / lr[2])} times smaller than at alpha 0.5')


def alpha_lazy() -> str:
    weights = [_alpha_last('weight_change_centered', normalize=n) for n in (True, False)]
    ratios = (weights[0] / weights[1]).drop(0.0)
    scales = [_scale(alpha) for alpha in ratios.index]
    kernel = (_alpha_drift('ntk_drift_centered', normalize=True)
              / _alpha_drift('ntk_drift_centered', normalize=False))
    centred = _alpha_drift('ntk_drift_centered', normalize=False)
    peak = centred.idxmax()
    measured = [fixed(r, 3) if r < 2 else significant(r, 3) for r in ratios]
    predicted = [fixed(s, 3) if s < 2 else fixed(s, 0) for s in scales]
    return ("the normalised centred net's weight change over the plain centred net's is "
            f'{", ".join(measured[:-1])} and {measured[-1]} at alpha 0.1 ... 2, against `s` = '
            f'{", ".join(predicted[:-1])} and {predicted[-1]}. Its kernel moves by more than '
            f'`s` times as much ({fixed(kernel[0.5], 2)}x, {fixed(kernel[1], 1)}x, '
            f'{fixed(kernel[2], 1)}x at alpha 0.5, 1, 2): the second-order terms grow as the '
            "displacement squared. So the plain centred ResNet's drift, whose large `s` keeps "
            f'it lazy, peaks near alpha {peak:g} ({fixed(centred[peak], 4)}) and falls to '
            f'{fixed(centred[2], 4)} at alpha 2')


def alpha_normalised() -> str:
    centred = _alpha_drift('ntk_drift_centered', normalize=True)
    plain = _alpha_drift('ntk_drift', normalize=True)
    fc = _alpha_fc('ntk_drift_centered')
    assert centred.is_monotonic_increasing and centred[0.5] < fc < centred[1]
    rising = ' -> '.join(significant(centred[a]) for a in (0.25, 0.5, 1.0))
    loss, accuracy = ([_alpha_last(metric, normalize=True, predictor=p)
                       for p in ('net', 'net_centered')]
                      for metric in ('train_loss', 'test_accuracy'))
    return (f'{significant(centred[0])} (the linear net) -> {rising} -> {fixed(centred[2], 3)}, '
            f"and the FC net's centred {fixed(fc, 3)} lies between alpha 0.5 and 1. The "
            'branches are what makes the kernel move: at alpha 0.5 the ResNet moves '
            f'{fixed(fc / centred[0.5], 1)}x less than the FC net, at alpha 2 '
            f'{fixed(centred[2] / fc, 1)}x more. These nets all train (train loss '
            f'{span(pd.concat(loss), 3)} at width 1024, test '
            f'accuracy {span(accuracy[0], 2)} plain, {span(accuracy[1], 2)} centred). - **The '
            'normalised plain net moves its kernel less than the centred one** '
            f'({fixed(plain[0.5], 4)} against {fixed(centred[0.5], 3)} at alpha 0.5, '
            f'{fixed(plain[2], 3)} against {fixed(centred[2], 3)} at alpha 2)')


#: The nets of the scale/shape table: README label -> their columns.
SCALE_SHAPE_NETS = {
    'normalised ResNet, alpha 0.5': {'model': 'resnet', 'alpha': 0.5, 'normalize': True},
    'normalised ResNet, alpha 1': {'model': 'resnet', 'alpha': 1.0, 'normalize': True},
    'normalised ResNet, alpha 2': {'model': 'resnet', 'alpha': 2.0, 'normalize': True},
    'FC net': {'model': 'fc'},
    'plain ResNet, alpha 2': {'model': 'resnet', 'alpha': 2.0, 'normalize': False},
}


def _net(label: str, metric: str) -> pd.Series:
    """A net's ``metric`` at width 1024, seed by seed."""
    rows = where(_alpha_runs(), metric=metric, **SCALE_SHAPE_NETS[label])
    return rows.set_index('seed')['value'].sort_index()


def alpha_scale_shape_table() -> str:
    lines = []
    for label in SCALE_SHAPE_NETS:
        for suffix, name in (('', label), ('_centered', 'its centred twin')):
            cells = [fixed(_net(label, f'ntk_drift{suffix}').mean(), 4),
                     ', '.join(signed(a, 4) for a in _net(label, f'ntk_scale_change{suffix}')),
                     fixed(_net(label, f'ntk_shape_change{suffix}').mean(), 4)]
            lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def alpha_scale_bullets() -> str:
    lazy = 'plain ResNet, alpha 2'
    grown = pd.concat([_net(label, 'ntk_scale_change_centered')
                       for label in SCALE_SHAPE_NETS if label != lazy])
    kept = pd.concat([_net(label, 'ntk_scale_change').abs()
                      for label in SCALE_SHAPE_NETS if label.startswith('normalised')])
    shrunk = _net(lazy, 'ntk_scale_change')
    return (f'by {fixed(100 * grown.min(), 0)}-{fixed(100 * grown.max(), 0)} % of its scale, '
            'except where a large output keeps it lazy (the plain ResNet at alpha 2). - **The '
            "plain normalised ResNet's kernel keeps its scale** (`|a|` "
            f'{fixed(kept.min(), 4)}-{fixed(kept.max(), 3)}, either sign). What is left of its '
            "drift is mostly the shape change, which is about the centred twin's. - **The FC "
            "net's kernel shrinks** by about as much as its twin's grows. That is why the two "
            'FC drifts came out equal. - **The unnormalised ResNet at alpha 2 shrinks most** '
            f'(`a` = {fixed(shrunk.max(), 2)} to {fixed(shrunk.min(), 2)})')


def _terms(folder: str = '') -> pd.DataFrame:
    """A centring sweep's fits, mean and std over seeds (``..._terms.csv``)."""
    return _alpha(f'{folder}figures/ntk_drift_centering/'
                  'ntk_drift_centering_ntk_scale_centering_terms.csv')


def _seed_fits(folder: str = '') -> pd.DataFrame:
    """A centring sweep's fits, seed by seed (``..._seeds.csv``)."""
    return _alpha(f'{folder}figures/ntk_drift_centering/'
                  'ntk_drift_centering_ntk_scale_centering_seeds.csv')


def _center_scale(folder: str = '') -> pd.DataFrame:
    """A centring sweep's drifts by ``c`` (``..._center_scale.csv``), width 1024."""
    return where(_alpha(f'{folder}figures/ntk_drift_centering/'
                        'ntk_drift_centering_ntk_drift_center_scale.csv'), width=1024)


def _undone(row: pd.Series) -> float:
    """:func:`ntkexp.ntk_drift.undone_share` of a fit's (mean) terms."""
    return ntk_drift.undone_share(*(row[t] for t in TERMS))


def _fit(row: pd.Series, digits: int = 3) -> str:
    return ', '.join(signed(row[t], digits) for t in TERMS)


#: The nets of the centring sweep at depths 3 and 4: README label -> columns.
CENTRING_NETS = {
    'FC net': {'model': 'fc'},
    'normalised ResNet, alpha 0.5': {'model': 'resnet', 'alpha': 0.5},
    'normalised ResNet, alpha 2': {'model': 'resnet', 'alpha': 2.0},
}


def _centring(label: str, width: int = 1024) -> pd.Series:
    return where(_terms(), width=width, **CENTRING_NETS[label]).iloc[0]


def _signs_differ(fits: pd.DataFrame) -> pd.DataFrame:
    """Each (net, seed, term) whose sign differs from the mean over the net's seeds."""
    keys = ['model', 'alpha']
    long = fits.melt(id_vars=keys + ['seed'], value_vars=list(TERMS), var_name='term')
    mean = long.groupby(keys + ['term'], dropna=False)['value'].transform('mean')
    return long[np.sign(long['value']) != np.sign(mean)]


def alpha_centring_table() -> str:
    terms = _terms()
    lines = []
    for label in CENTRING_NETS:
        row = _centring(label)
        cells = [f'{signed(row[t], 3)} +- {fixed(row[f"{t}_std"], 3)}' for t in TERMS]
        cells.append(f'{fixed(row["residual"], 4)} / {fixed(row["largest"], 2)}')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    misses = (100 * terms['residual'] / terms['largest']).groupby(terms['width'])
    wide, narrow = misses.get_group(1024), misses.get_group(64)
    seeds = _seed_fits()
    wide_fits = where(seeds, width=1024)
    assert _signs_differ(wide_fits).empty
    differ = _signs_differ(where(seeds, width=256))
    assert len(differ) == 1
    differ = differ.iloc[0]
    net = {'fc': 'the FC net', 'resnet': 'the ResNet'}[differ['model']]
    return ('\n'.join(lines) + ' - **The quadratic holds where the nets are lazy.** At width '
            f'1024 it misses by {fixed(wide.min(), 1)}-{fixed(wide.max(), 1)} % of the largest '
            f'change; at width 64 by {fixed(narrow.min(), 0)}-{fixed(narrow.max(), 0)} % '
            '(`residual` column). - **The signs are the same in each of the '
            f'{len(wide_fits)} (net, seed) fits at width 1024.** At width 256 only one sign '
            f"differs ({net}'s `{differ['term']}` for seed {differ['seed']}, "
            f"{fixed(differ['value'], 3)}).")


def _sum_text(row: pd.Series) -> str:
    """``+a - b + c = total`` of a fit's three terms (the total unrounded)."""
    values = [row[t] for t in TERMS]
    text = signed(values[0], 3)
    for value in values[1:]:
        text += f' {"-" if value < 0 else "+"} {fixed(abs(value), 3)}'
    return f'{text} = {fixed(sum(values), 3)}'


def alpha_centring_sums() -> str:
    fc = _centring('FC net')
    measured = _alpha_drift('ntk_scale_change', normalize=True)
    assert fixed(measured[0.5], 4) == fixed(measured[2], 4)  # "at both alphas"
    # Where the FC net's a(c) crosses zero: the smaller root in 1 - c.
    roots = np.roots([fc['from_f0_squared'], fc['from_f0'], fc['from_y']])
    crossing = 1 - roots.real[roots.real > 0].min()
    half = where(_center_scale(), model='fc', center_scale=0.5).set_index('metric')['mean']
    return (f"`{_sum_text(_centring('normalised ResNet, alpha 0.5'))}` at alpha 0.5 and "
            f"`{_sum_text(_centring('normalised ResNet, alpha 2'))}` at alpha 2. This is the "
            'near-cancellation in the first table, where the measured mean `a` is '
            f'{fixed(measured[0.5], 4)} at both alphas. - The FC net: `{_sum_text(fc)}` '
            f"(measured {fixed(_alpha_fc('ntk_scale_change'), 3)}), so its kernel shrinks "
            "(below: why more than the ResNet's). - **The centred net (`c = 1`) gets only "
            '`from_y`.** - **Where `a(c)` crosses zero, the drift is the shape change alone.** '
            f"The FC net's fit crosses zero near `c = {fixed(crossing, 1)}`. At `c = 0.5` its "
            f'drift is {fixed(half["ntk_drift_centered"], 3)} (scale '
            f'{fixed(half["ntk_scale_change_centered"], 3)}, shape '
            f'{fixed(half["ntk_shape_change_centered"], 3)}), against '
            f'{fixed(half["ntk_drift"], 3)} for the plain net and '
            f"{fixed(_alpha_fc('ntk_drift_centered'), 3)} for the centred one")


def alpha_depth8_table() -> str:
    terms = where(_terms('depth8/'), width=1024)
    runs = _alpha_runs('depth8/')
    lines = []
    for alpha in (0.5, 2.0):
        net = where(runs, alpha=alpha, center_scale=1.0)  # the net is the same at every c
        pairs = {}
        for metric in ('ntk_drift', 'ntk_scale_change', 'ntk_shape_change'):
            values = [where(net, metric=metric + s)['value'].mean() for s in ('', '_centered')]
            form = signed if metric == 'ntk_scale_change' else fixed
            pairs[metric] = ' / '.join(form(v, 3) for v in values)
        row = where(terms, alpha=alpha).iloc[0]
        lines.append(f'| alpha {alpha:g} | ' + ' | '.join(pairs.values()) + f' | {_fit(row)} | '
                     f'{fixed(row["residual"], 4)} / {fixed(row["largest"], 2)} |')
    assert where(terms, width=1024)['same_signs'].all()
    misses = terms.set_index('alpha')
    misses = 100 * misses['residual'] / misses['largest']
    shares = {alpha: fixed(100 * _undone(row), 0) for alpha, row in terms.set_index('alpha')
              .iterrows()}
    plain = where(runs, alpha=0.5, center_scale=0.0, metric='ntk_scale_change')['value']
    return ('\n'.join(lines) + f' - The quadratic still holds, to {fixed(misses[0.5], 1)} % and '
            f'{fixed(misses[2], 0)} % of the largest change. - The terms have the same signs as '
            'at depth 4. - The cancellation is no longer near-complete. Undoing `f_0` '
            f'(`from_f0 + from_f0_squared`) takes away {shares[0.5]} % of the growth from '
            f'fitting `y` at alpha 0.5 and {shares[2]} % at alpha 2. At depth 4 it took about '
            "all of it, and for the FC net twice it. - The plain net's kernel therefore grows "
            f'(`a` = {signed(plain.min(), 3)} to {signed(plain.max(), 3)} per seed at alpha 0.5)')


def alpha_fc_shares() -> str:
    return (f'Undoing `f_0` takes away {fixed(100 * _undone(_centring("FC net")), 0)} % of the '
            'growth from fitting `y` for the FC net, against '
            f'{fixed(100 * _undone(_centring("normalised ResNet, alpha 0.5")), 0)} % for the '
            'normalised ResNet at alpha 0.5')


def alpha_fc_nobias() -> str:
    row = where(_terms('fc-nobias/'), width=1024).iloc[0]
    scale = where(_center_scale('fc-nobias/'), center_scale=1.0).set_index('metric')['mean']
    return (f"the FC net's terms are {signed(row['from_y'], 3)}, {signed(row['from_f0'], 3)} "
            f"and {signed(row['from_f0_squared'], 3)} ({fixed(100 * _undone(row), 0)} %). Its "
            f"kernel shrinks by {fixed(-scale['ntk_scale_change'], 3)} and its twin's grows by "
            f"{fixed(scale['ntk_scale_change_centered'], 3)}.")


def alpha_fc_depth8() -> str:
    row = where(_terms('fc-depth8/'), width=1024).iloc[0]
    drift = where(_center_scale('fc-depth8/'), center_scale=1.0).set_index('metric')['mean']
    return (f"the FC net's terms are {signed(row['from_y'], 3)}, {signed(row['from_f0'], 3)} "
            f"and {signed(row['from_f0_squared'], 3)}, so undoing `f_0` takes away "
            f'{fixed(100 * _undone(row), 0)} % of the growth. Its plain net now moves its '
            f"kernel more than its twin (drift {fixed(drift['ntk_drift'], 3)} against "
            f"{fixed(drift['ntk_drift_centered'], 3)}).")


def _layer_groups(folder: str) -> pd.DataFrame:
    """The per-part sums of the per-leaf rows (``..._ntk_layer_groups.csv``), width 1024."""
    return where(_alpha(f'{folder}figures/ntk_drift_centering/'
                        'ntk_drift_centering_ntk_layer_groups.csv'), width=1024)


def _group_terms(folder: str) -> pd.DataFrame:
    """The centring fits part by part (``..._layer_groups_centering_terms.csv``)."""
    return _alpha(f'{folder}figures/ntk_drift_centering/'
                  'ntk_drift_centering_ntk_layer_groups_centering_terms.csv')


#: The nets split by parameter leaf: README label -> (model, depth).
LAYER_NETS = {'FC, depth 3': ('fc', 3), 'FC, depth 8': ('fc', 8),
              'ResNet, depth 4': ('resnet', 4), 'ResNet, depth 8': ('resnet', 8)}


def alpha_layers_table() -> str:
    groups = _layer_groups('layers/')
    lines = []
    for label, (model, depth) in LAYER_NETS.items():
        net = where(groups, model=model, depth=depth).set_index(['metric', 'group'])['mean']
        cells = [f'{fixed(net["ntk_layer_share", g], 2)}; '
                 f'{signed(net["ntk_layer_scale_change", g], 3)} / '
                 f'{signed(net["ntk_layer_scale_change_centered", g], 3)}' for g in GROUPS]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


#: The rows of the part-by-part centring table: README label -> (model, depth, width).
LAYER_CENTRING_ROWS = {
    'FC depth 3, 1024': ('fc', 3, 1024), 'FC depth 3, 2048': ('fc', 3, 2048),
    'FC depth 8, 1024': ('fc', 8, 1024), 'ResNet depth 4, 1024': ('resnet', 4, 1024),
    'ResNet depth 4, 2048': ('resnet', 4, 2048), 'ResNet depth 8, 1024': ('resnet', 8, 1024)}


def _parts(model: str, depth: int, width: int) -> pd.DataFrame:
    """A net's centring fits by part (and ``total``), 3 or 8 seeds."""
    return where(_group_terms('layer-centering/'), model=model, depth=depth,
                 width=width).set_index('group')


def alpha_layer_centring_table() -> str:
    """By part: the terms, the ratio of their means (``undone_share``) and the
    range of the seeds' own shares."""
    lines = []
    for label, net in LAYER_CENTRING_ROWS.items():
        parts = _parts(*net)
        cells = [f'{_fit(parts.loc[g])}; {fixed(_undone(parts.loc[g]), 2)} '
                 f'({fixed(parts.loc[g, "undone_share_min"], 2)}-'
                 f'{fixed(parts.loc[g, "undone_share_max"], 2)})' for g in GROUPS]
        lines.append(f'| {label}, {int(parts["seeds"].iloc[0])} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def alpha_layer_parts() -> str:
    def shares(model: str, depths: tuple[int, ...], groups=GROUPS) -> list[float]:
        return [_undone(_parts(m, d, w).loc[g]) for m, d, w in LAYER_CENTRING_ROWS.values()
                if m == model and d in depths for g in groups]

    eight = _layer_groups('layer-centering/')
    fc = where(eight, model='fc', depth=3, metric='ntk_layer_scale_change').set_index('group')
    resnet = where(eight, model='resnet', depth=4).set_index(['metric', 'group'])
    plain = [f'{signed(resnet.loc[("ntk_layer_scale_change", g), "mean"], 3)} +- '
             f'{fixed(resnet.loc[("ntk_layer_scale_change", g), "std"], 3)}' for g in GROUPS]
    centred = [signed(resnet.loc[('ntk_layer_scale_change_centered', g), 'mean'], 3)
               for g in GROUPS]
    deep = _parts('resnet', 8, 1024)
    deep_plain = where(_layer_groups('layers/'), model='resnet', depth=8,
                       metric='ntk_layer_scale_change').set_index('group')['mean']
    deep_seeds = where(_group_terms('depth8-seeds/'), model='resnet').set_index('group')
    return (f'Its parts lose {span(shares("fc", (3, 8)), 1)} times their growth, so each of '
            'them shrinks: with 8 seeds the plain FC net\'s parts of `a` are '
            f'{fixed(fc.loc["input", "mean"], 3)}, {fixed(fc.loc["hidden", "mean"], 3)} and '
            f'{fixed(fc.loc["readout", "mean"], 3)} at width 1024 (input, hidden, readout; '
            "`..._ntk_layer_groups.csv`). - **The ResNet's parts lose about their growth at "
            'depth 4, and its branches less at depth 8.** At depth 4 the shares are '
            f'{span(shares("resnet", (4,)), 2)}, and the plain ResNet\'s parts of `a` are small '
            "against the centred net's (width 1024, mean +- std over 8 seeds: input "
            f'{plain[0]}, branches {plain[1]}, readout {plain[2]}, against {centred[0]}, '
            f'{centred[1]} and {centred[2]}). Its input layer loses the largest share at every '
            f'depth and width ({span(shares("resnet", (4, 8), ("input",)), 2)}). At depth 8 the '
            f'branches lose {fixed(_undone(deep.loc["hidden"]), 2)} and the readout '
            f'{fixed(_undone(deep.loc["readout"]), 2)} of their growth, so they grow '
            f'({signed(deep_plain["hidden"], 3)} and {signed(deep_plain["readout"], 3)}). With '
            '8 seeds ([`depth8-seeds/`](depth8-seeds/), thirty-fifth session) they lose '
            f'{fixed(_undone(deep_seeds.loc["hidden"]), 2)} and '
            f'{fixed(_undone(deep_seeds.loc["readout"]), 2)}, and the input layer '
            f'{fixed(_undone(deep_seeds.loc["input"]), 2)}.')


def alpha_width_terms() -> str:
    def whole(model: str, width: int) -> pd.Series:
        return _parts(model, 3 if model == 'fc' else 4, width).loc['total']

    def fall(model: str) -> str:
        ratios = [fixed(whole(model, 2048)[t] / whole(model, 1024)[t], 2) for t in TERMS]
        return f'{ratios[0]}, {ratios[1]} and {ratios[2]}'

    def shares(model: str) -> str:
        return f'{fixed(_undone(whole(model, 1024)), 2)} -> {fixed(_undone(whole(model, 2048)), 2)}'

    def seeds(model: str, width: int, end: str) -> str:
        return fixed(whole(model, width)[f'undone_share_{end}'], 2)

    three = {m: _undone(_centring(label)) for m, label in (
        ('resnet', 'normalised ResNet, alpha 0.5'), ('fc', 'FC net'))}
    return (f"From width 1024 to 2048 the whole kernel's terms fall to {fall('fc')} times (FC) "
            f"and {fall('resnet')} times (ResNet), 8 seeds each. The undone shares keep the nets "
            f"apart (whole kernel: FC {shares('fc')}, ResNet {shares('resnet')}), so the "
            'difference is not a finite-width effect at these widths. - **The seeds scatter.** '
            "The whole ResNet's undone share at depth 4 and width 1024 was "
            f"{fixed(three['resnet'], 2)} with seeds 0-2 (the centring sweep above) and is "
            f"{fixed(_undone(whole('resnet', 1024)), 2)} with 8; its seeds range from "
            f"{seeds('resnet', 1024, 'min')} to {seeds('resnet', 1024, 'max')}. The FC net's "
            f"whole share went from {fixed(three['fc'], 2)} to "
            f"{fixed(_undone(whole('fc', 1024)), 2)}. Comparisons between the nets hold in "
            f"every seed pair at 2048 (FC from {seeds('fc', 2048, 'min')}, ResNet up to "
            f"{seeds('resnet', 2048, 'max')}), but not at 1024, where the ranges overlap (FC "
            f"from {seeds('fc', 1024, 'min')}, ResNet up to {seeds('resnet', 1024, 'max')})")


#: The f0-size table's rows: README label, width, the sweep's folder and columns.
F0_SIZE_ROWS = [
    ('depth 4, normalised (3 seeds)', 512, '', {'model': 'resnet', 'alpha': 0.5}),
    ('depth 4, not normalised', 512, 'f0-size/', {'depth': 4}),
    ('depth 4, normalised', 1024, 'layer-centering/', {'model': 'resnet', 'depth': 4}),
    ('depth 4, not normalised', 1024, 'f0-size/', {'depth': 4}),
    ('depth 8, normalised (3 seeds)', 512, 'depth8/', {'alpha': 0.5}),
    ('depth 8, not normalised', 512, 'f0-size/', {'depth': 8}),
    ('depth 8, normalised', 1024, 'depth8-seeds/', {'model': 'resnet'}),
    ('depth 8, not normalised', 1024, 'f0-size/', {'depth': 8}),
]


def _f0_rows() -> dict[tuple[str, int], pd.Series]:
    return {(label, width): where(_terms(folder), width=width, **columns).iloc[0]
            for label, width, folder, columns in F0_SIZE_ROWS}


def _per_f0(row: pd.Series) -> float:
    """:func:`ntkexp.ntk_drift.undone_share_per_f0` of a fit's (mean) terms."""
    return ntk_drift.undone_share_per_f0(*(row[t] for t in TERMS), row['f0_over_y'])


def alpha_f0_table() -> str:
    lines = []
    for (label, width), row in _f0_rows().items():
        f0 = row['f0_over_y']
        cells = [str(width)] + [signed(row[t], 4) for t in TERMS]
        cells += [fixed(_undone(row), 2), fixed(f0, 2) if f0 < 10 else significant(f0, 3),
                  fixed(_per_f0(row), 2)]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def alpha_f0_how() -> str:
    rows = _f0_rows()

    def per_unit(depth: int, normalised: bool) -> str:
        return span([_per_f0(row) for (label, _), row in rows.items()
                     if label.startswith(f'depth {depth}, ')
                     and ('not' not in label) == normalised], 2)

    plain4, norm4 = rows['depth 4, not normalised', 1024], rows['depth 4, normalised', 1024]
    plain8, norm8 = rows['depth 8, not normalised', 1024], rows['depth 8, normalised', 1024]
    deep = [_undone(rows['depth 8, not normalised', w]) for w in (512, 1024)]
    assert fixed(plain4['from_f0'], 3) == fixed(norm4['from_f0'], 3)  # "in both"
    return ('Without normalisation the ResNet loses '
            f'{fixed(_undone(plain4), 2)} of its growth at depth 4 '
            f"({fixed(_undone(rows['depth 4, not normalised', 512]), 2)} at width 512), as much "
            f'as the FC net, and {span(deep, 1)} at depth 8. Per unit of `f0_over_y` it loses '
            f'{per_unit(4, False)} and {per_unit(8, False)}, against the normalised net\'s '
            f'{per_unit(4, True)} and {per_unit(8, True)}. - **How.** The terms from `f_0` '
            'hardly change between the two nets (depth 4, width 1024: '
            f"{fixed(plain4['from_f0'], 3)} in both, {signed(norm4['from_f0_squared'], 3)} and "
            f"{signed(plain4['from_f0_squared'], 3)}). What changes is `from_y`: it falls "
            f"{fixed(norm4['from_y'] / plain4['from_y'], 1)} times at depth 4 and "
            f"{fixed(norm8['from_y'] / plain8['from_y'], 1)} times at depth 8, about as "
            f"`f0_over_y` rises ({fixed(plain4['f0_over_y'] / norm4['f0_over_y'], 1)} and "
            f"{fixed(plain8['f0_over_y'] / norm8['f0_over_y'], 1)} times)")


def _sweeps() -> pd.DataFrame:
    """Every centring sweep at widths 512 and up (``undone_share_against_f0.csv``)."""
    return _alpha('f0-size/undone_share_against_f0.csv')


def _seed_slopes() -> pd.DataFrame:
    return _alpha('f0-size/seed_scatter_slopes.csv').set_index(['nets', 'term'])


def alpha_every_sweep() -> str:
    sweeps = _sweeps()
    across = _seed_slopes().loc['across nets and widths (seed means)', 'undone_share']
    assert len(sweeps) == across['nets_and_widths']
    per_f0 = sweeps['undone_share_per_f0']
    return (f'the undone share spans {span(sweeps["undone_share"], 2)}, and its ratio to '
            f'`f0_over_y` {span(per_f0, 2)} (mean {fixed(per_f0.mean(), 2)}, std '
            f'{fixed(per_f0.std(), 2)}); on log-log axes the share rises with `f0_over_y` with '
            f'slope {fixed(across["slope_on_log_f0_over_y"], 2)} +- {fixed(across["stderr"], 2)}')


def _differences() -> pd.DataFrame:
    """The seed-bootstrap differences of ``undone_share_per_f0`` (as text columns)."""
    return _alpha('f0-size/seed_scatter_differences.csv').astype({'width': str, 'depth': str})


#: The seed-scatter table's rows: README label -> the CSV rows' columns.
SCATTER_ROWS = {
    'FC depth 3, width 1024 - 2048': [{'comparison': 'width 1024 - 2048', 'net': 'FC'}],
    'normalised ResNet depth 4, width 1024 - 2048': [
        {'comparison': 'width 1024 - 2048', 'net': 'ResNet, normalised'}],
    'unnormalised ResNet depth 4, width 512 - 1024': [
        {'comparison': 'width 512 - 1024', 'depth': '4'}],
    'FC, depth 3 - 8, width 1024': [{'comparison': 'depth 3 - 8'}],
    'normalised ResNet, depth 4 - 8, width 1024': [
        {'comparison': 'depth 4 - 8', 'net': 'ResNet, normalised'}],
    'unnormalised ResNet, depth 4 - 8, width 512 and 1024': [
        {'comparison': 'depth 4 - 8', 'net': 'ResNet, not normalised', 'width': w}
        for w in ('512', '1024')],
    'FC - ResNet at width 1024: input, hidden, readout': [
        {'comparison': 'FC - ResNet', 'depth': '3 - 4', 'width': '1024', 'part': g}
        for g in GROUPS],
    'FC - ResNet at width 2048: input, hidden, readout': [
        {'comparison': 'FC - ResNet', 'depth': '3 - 4', 'width': '2048', 'part': g}
        for g in GROUPS],
    'FC - ResNet at depth 8, width 1024: whole kernel': [
        {'comparison': 'FC - ResNet', 'depth': '8 - 8', 'part': 'total'}],
    'FC - ResNet at depth 8, width 1024: input, hidden, readout': [
        {'comparison': 'FC - ResNet', 'depth': '8 - 8', 'part': g} for g in GROUPS],
}


def _difference(**columns) -> pd.Series:
    rows = where(_differences(), **columns)
    assert len(rows) == 1, columns
    return rows.iloc[0]


def alpha_scatter_table() -> str:
    lines = []
    for label, selections in SCATTER_ROWS.items():
        rows = [_difference(**columns) for columns in selections]
        difference = ', '.join(signed(r['difference'], 2) for r in rows)
        interval = ', '.join(f'{signed(r["low"], 2)} ... {signed(r["high"], 2)}' for r in rows)
        lines.append(f'| {label} | {difference} | {interval} |')
    return '\n'.join(lines)


def alpha_per_unit() -> str:
    sweeps = _sweeps()

    def by_width(net: str) -> str:
        return ', '.join(fixed(v, 2) for v in where(sweeps, net=net)
                         .sort_values('width')['undone_share_per_f0'])

    parts = [f'{fixed(_per_f0(_parts("fc", 3, 1024).loc[g]), 2)} and '
             f'{fixed(_per_f0(_parts("resnet", 4, 1024).loc[g]), 2)}' for g in GROUPS]
    compared = [_difference(comparison=c, depth=d, part='total')
                for c, d in (('width 1024 - 2048', '3'), ('width 1024 - 2048', '4'))]
    compared += [_difference(comparison='FC - ResNet', depth='3 - 4', width='1024', part=g)
                 for g in GROUPS]
    assert not any(row['beyond_the_seeds'] for row in compared)  # "within the scatter"
    eight = sweeps[(sweeps['seeds'] == 8) & ~sweeps['net'].str.contains('depth 8')]
    return (f'So the fall with width (FC {by_width("FC depth 3")} at widths 512, 1024, 2048; '
            f'normalised ResNet {by_width("ResNet depth 4, alpha 0.5, normalised")}) and the '
            f"parts' differences between the two nets (input {parts[0]}, hidden layers or "
            f'branches {parts[1]}, readout {parts[2]} at width 1024, '
            '`layer-centering/.../..._ntk_layer_groups_centering_terms.csv`) are all within '
            "the scatter of 8 seeds. At depths 3 and 4 each 8-seed sweep's whole-kernel value "
            f'lies at {span(eight["undone_share_per_f0"], 2)}')


def alpha_depth_lowers() -> str:
    deep = where(_group_terms('depth8-seeds/'), width=1024).set_index(['model', 'group'])

    def value(model: str, group: str = 'total') -> str:
        return fixed(deep.loc[(model, group), 'undone_share_per_f0'], 2)

    def interval(model: str) -> str:
        row = deep.loc[model, 'total']
        return (f'{fixed(row["undone_share_per_f0_lo"], 2)}-'
                f'{fixed(row["undone_share_per_f0_hi"], 2)}')

    fc, resnet = (_difference(comparison=f'depth {d} - 8', net=n, width='1024')
                  for d, n in (('3', 'FC'), ('4', 'ResNet, normalised')))
    assert fixed(fc['difference'], 2) == fixed(resnet['difference'], 2)
    assert fc['beyond_the_seeds'] and resnet['beyond_the_seeds']
    together = _difference(comparison='FC - ResNet', depth='8 - 8', part='total')
    inputs = _difference(comparison='FC - ResNet', depth='8 - 8', part='input')
    assert inputs['beyond_the_seeds'] and not together['beyond_the_seeds']
    unnormalised = _difference(comparison='depth 4 - 8', net='ResNet, not normalised',
                               width='1024')
    assert not unnormalised['beyond_the_seeds']  # "within its wider scatter"
    return (f'they are {value("fc")} (interval {interval("fc")}) and {value("resnet")} '
            f'({interval("resnet")}), {fixed(fc["difference"], 2)} below depths 3 and 4 at the '
            "same width, beyond the seeds' scatter for both, while the two nets still agree "
            f'(difference {fixed(together["difference"], 2)}). Part by part they do not quite: '
            "the ResNet's input layer loses more per unit than the FC net's "
            f'({value("resnet", "input")} against {value("fc", "input")}), beyond the scatter; '
            f'its readout less ({value("resnet", "readout")} against {value("fc", "readout")}), '
            "at the scatter's edge. Without normalisation the ResNet's value also falls with "
            f'depth at width 1024 ({fixed(unnormalised["first"], 2)} -> '
            f'{fixed(unnormalised["second"], 2)}), within its wider scatter.')


def alpha_seed_slopes() -> str:
    slopes = _seed_slopes()
    shallow, every = 'depths 3 and 4', 'every 8-seed sweep'
    across = slopes.loc['across nets and widths (seed means)', 'undone_share']

    def slope(row: pd.Series) -> str:
        return f'{fixed(row["slope_on_log_f0_over_y"], 2)} +- {fixed(row["stderr"], 2)}'

    def of(nets: str, term: str) -> str:
        return slope(slopes.loc[nets, term])

    def counts(nets: str) -> str:
        row = slopes.loc[nets, 'undone_share']
        return f'{int(row["seeds"])} seeds, {int(row["nets_and_widths"])} nets'

    return ("the log-log slope of the undone share on the seed's `f0_over_y` is "
            f'{of(shallow, "undone_share")} at depths 3 and 4 ({counts(shallow)} and widths), '
            f'and {of(every, "undone_share")} over every 8-seed sweep, depth 8 included '
            f'({counts(every)}, depths and widths). Net against net (the seed means of the '
            f'{int(across["nets_and_widths"])} nets and widths above) it is {slope(across)}. '
            'By term (`f0-size/seed_scatter_slopes.csv`): - `from_f0` follows the seed\'s '
            f'`f_0` (slope {of(shallow, "from_f0")}; {of(every, "from_f0")} over every sweep). '
            'A term linear in `|f_0|` would have slope 0.5. - `from_f0_squared` hardly does '
            f'({of(shallow, "from_f0_squared")}; {of(every, "from_f0_squared")}). - `from_y` '
            f'rises with it at depths 3 and 4 ({of(shallow, "from_y")}), but not over every '
            f'sweep ({of(every, "from_y")}).')


# --- The tests -------------------------------------------------------------------------

CLAIMS = {
    NTH: [nth_table_erf, nth_table_relu, nth_k3_cosine, nth_k3_overshoot, nth_k4_size,
          nth_after_25_steps, nth_second_order, nth_relu, nth_actual_change, nth_early_steps,
          nth_wide_table, nth_wide_fc, nth_wide_resnet, nth_seeds_table, nth_seeds_test,
          nth_seeds_rest, nth_optimizers_table, nth_momentum, nth_cross_entropy],
    RESNET: [resnet_drift_table, resnet_drift_ratio, resnet_alpha_sweep, resnet_seed_spread,
             resnet_accuracy, resnet_spectrum_table, resnet_spectrum_range],
    ALPHA: [alpha_setting, alpha_table, alpha_plain, alpha_lazy, alpha_normalised,
            alpha_scale_shape_table, alpha_scale_bullets, alpha_centring_table,
            alpha_centring_sums, alpha_depth8_table, alpha_fc_shares, alpha_fc_nobias,
            alpha_fc_depth8, alpha_layers_table, alpha_layer_centring_table,
            alpha_layer_parts, alpha_width_terms, alpha_f0_table, alpha_f0_how,
            alpha_every_sweep, alpha_scatter_table, alpha_per_unit, alpha_depth_lowers,
            alpha_seed_slopes],
}


def test_formatting():
    assert significant(0.07246) == '0.072' and significant(518.7) == '520'
    assert signed(-0.0017, 2) == '0.00' and signed(0.0035, 2) == '+0.00'
    assert two_places(0.0983) == '0.098' and two_places(1.593) == '1.59'


@pytest.mark.parametrize('readme, claim', [
    pytest.param(readme, claim, id=claim.__name__)
    for readme, claims in CLAIMS.items() for claim in claims])
def test_readme_states_what_the_tables_give(readme, claim):
    assert_readme_says(readme, claim())
