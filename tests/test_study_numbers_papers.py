"""The headline numbers of six studies' READMEs, recomputed from the result tables committed
beside them: ``results/jacot2018``, ``kopitkov2019``, ``alignment``, ``nads``, ``huang2020``
and ``huang2020-finite``.

As in ``tests/test_readme_numbers.py``, each claim is a piece of README text written from the
tables (rounded half up, as the READMEs round; line breaks do not count).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from readme_claims import (
    RESULTS, assert_readme_says, fixed, one, scientific, significant, span, table, table_row,
    where)


def arrow(values, digits: int = 3) -> str:
    """``values`` joined by `` -> ``, each with ``digits`` decimals."""
    return ' -> '.join(fixed(v, digits) for v in values)


# --- results/jacot2018 -----------------------------------------------------------

def _jacot(experiment: str, metric: str, **columns) -> pd.DataFrame:
    return where(table('jacot2018/table.parquet'), experiment=f'jacot2018_{experiment}',
                 metric=metric, **columns)


def _last_step(rows: pd.DataFrame) -> pd.DataFrame:
    """Per width, mean and std over the seeds at the last logged step."""
    return rows[rows['step'] == rows['step'].max()].groupby('width')['value'].agg(
        ['mean', 'std'])


def _fig3_curves() -> pd.DataFrame:
    """Fig. 3's logged metrics, one column each, indexed by (width, init, step)."""
    rows = where(table('jacot2018/table.parquet'), experiment='jacot2018_fig3')
    return rows[rows['step'].notna()].pivot_table(index=['width', 'init', 'step'],
                                                  columns='metric', values='value')


def jacot_fig1_table() -> str:
    change = table('jacot2018/figures/jacot2018_fig1/jacot2018_fig1_ntk_slice_change.csv')
    weights = _last_step(_jacot('fig1', 'weight_change'))['mean']
    return '\n'.join(
        table_row(str(r.width), f'**{fixed(r.change, digits)} +- {fixed(r.change_std, digits)}**',
            fixed(r.init_error, 3), scientific(weights[r.width]))
        for r, digits in zip(change.sort_values('width').itertuples(), (3, 4)))


def jacot_fig1_scaling() -> str:
    change = table('jacot2018/figures/jacot2018_fig1/jacot2018_fig1_ntk_slice_change.csv')
    change = change.set_index('width')['change']
    narrow, wide = change.index.min(), change.index.max()
    return (f'the change is {fixed(change[narrow] / change[wide], 0)}x smaller for a '
            f'{fixed(wide / narrow, 0)}x wider net, more than the `n^(-1/2)` scaling alone '
            f'({fixed(math.sqrt(wide / narrow), 1)}x) predicts')


def jacot_fig1_fit() -> str:
    loss = _last_step(_jacot('fig1', 'train_loss', predictor='net'))['mean']
    test = _jacot('fig1', 'dist_ntk', split='test')
    distance = _last_step(test)['mean']
    narrow, wide = sorted(loss.index)
    return (f'Final training loss {significant(loss[narrow], 2)} (n = {narrow}) and '
            f'{significant(loss[wide], 2)} (n = {wide}); the test outputs '
            f"({int(test['n_test'].iloc[0])} fresh Gaussian inputs) are at RMS distance "
            f'{significant(distance[narrow], 2)} and {significant(distance[wide], 2)} from the '
            'infinite-width NTK dynamics')


def jacot_fig2_table() -> str:
    coverage = table('jacot2018/figures/jacot2018_fig2/jacot2018_fig2_functions_coverage.csv')
    drift = _last_step(_jacot('fig2', 'ntk_drift'))
    distance = _last_step(_jacot('fig2', 'dist_ntk', split='test'))['mean']
    return '\n'.join(
        table_row(str(r.width), fixed(r.inside, 3), fixed(r.mean_z2, 2),
            f"{significant(drift['mean'][r.width], 2)} +- {significant(drift['std'][r.width], 2)}",
            significant(distance[r.width], 2))
        for r in coverage.sort_values('width').itertuples())


def jacot_fig2_drift() -> str:
    coverage = table('jacot2018/figures/jacot2018_fig2/jacot2018_fig2_functions_coverage.csv')
    narrow, wide = (coverage.sort_values('width').iloc[i] for i in (0, -1))
    drift = _last_step(_jacot('fig2', 'ntk_drift'))['mean']
    slope = one(table('jacot2018/figures/jacot2018_fig2/jacot2018_fig2_ntk_drift_slopes.csv'),
                'slope', metric='ntk_drift')
    return (f'so "{fixed(wide.inside, 2)} vs {fixed(wide.expected, 2)}" is consistent with the '
            'Gaussian, while the excess `(f - mu)^2 / sigma^2` of the narrow nets '
            f'({fixed(narrow.mean_z2, 2)}) is a real finite-width effect. The drift '
            '`||Theta_T - Theta_0|| / ||Theta_0||` on the training points falls '
            f'{fixed(drift[narrow.width] / drift[wide.width], 1)}x from n = {int(narrow.width)} '
            f'to {int(wide.width)} (slope {fixed(slope, 2)} on a log-log plot')


def jacot_fig3_eigenvalues() -> str:
    rows = _jacot('fig3', 'pc_eigenvalue', width=1000)
    lam = [one(rows, rank=float(r)) for r in (1, 2, 3)]
    return f'`lambda_1..3` = {fixed(lam[0], 4)}, {fixed(lam[1], 5)}, {fixed(lam[2], 5)} against'


def jacot_fig3_learning_rate() -> str:
    lr = one(_jacot('fig3', 'lr_used', width=1000))
    max_lr = one(_jacot('fig3', 'max_lr', width=1000))
    lam_2 = one(_jacot('fig3', 'pc_eigenvalue', width=1000), rank=2.0)
    steps = int(_fig3_curves().index.get_level_values('step').max())
    return (f'{steps} GD steps at `lr = {fixed(lr / max_lr, 1)} * 2N / lambda_max = '
            f'{fixed(lr, 2)}` (t = {fixed(lr * steps, 0)}, `lambda_2 t = '
            f'{fixed(lam_2 * lr * steps, 1)}`)')


def _pair(values, digits: int = 2) -> str:
    """The two inits' values, ``a / b``, with ``digits`` significant digits."""
    return ' / '.join(significant(v, digits) for v in values)


def jacot_fig3_table() -> str:
    summary = table('jacot2018/figures/jacot2018_fig3/pc_summary.csv')
    curves = _fig3_curves()
    lines = []
    for width, h_digits in ((100, 3), (1000, 2)):
        runs = where(summary, width=width).sort_values('init')
        assert runs['theory_last'].nunique() == 1
        loss = [curves.loc[(width, r.init, r.step), 'loss'] for r in runs.itertuples()]
        lines.append(table_row(str(width), _pair(runs['h_max'], h_digits), _pair(runs['h_last']),
                         _pair(runs['g'].abs()), significant(runs['theory_last'].iloc[0], 2),
                         _pair(loss)))
    return '\n'.join(lines)


def jacot_fig3_straight_line() -> str:
    summary = table('jacot2018/figures/jacot2018_fig3/pc_summary.csv')
    return (f"(`h_t` at most {significant(where(summary, width=1000)['h_max'].max(), 2)}, against "
            f"{span(where(summary, width=100)['h_max'], 2)} at width 100)")


def jacot_fig3_decay() -> str:
    """Width 1000's first init against the infinite-width exponential."""
    curves = _fig3_curves().loc[(1000, 0)]
    g, theory = curves['pc_coefficient'].abs(), curves['pc_theory']
    return (f'(steps 0-8: {fixed(g[0], 3)} -> {fixed(g[8], 3)}, the exponential '
            f'{fixed(theory[8], 3)}), then faster than it (step 32: {fixed(g[32], 3)} against '
            f'{fixed(theory[32], 3)}), and levels off at {fixed(g[200], 3)} '
            f'({significant(g[150], 2)} at step 150, {significant(g[200], 2)} at 200)')


def jacot_fig3_small_lambda_2() -> str:
    rows = _jacot('fig3', 'pc_eigenvalue', width=1000)
    ratio = one(rows, rank=2.0) / one(rows, rank=1.0)
    return f'`lambda_2` is small here ({fixed(100 * ratio, 0)}% of `lambda_1`)'


def _sign_changes(values: pd.Series) -> int:
    return int((np.diff(np.sign(values.to_numpy())) != 0).sum())


def jacot_fig3_oscillation() -> str:
    curves = _fig3_curves()
    after = 100
    late = {key: curves.loc[key]['pc_coefficient'] for key in curves.index.droplevel('step')}
    late = {key: g[g.index >= after] for key, g in late.items()}
    assert _sign_changes(late[(1000, 0)]) == _sign_changes(late[(1000, 1)]) == 0
    first, second = late[(100, 0)], late[(100, 1)]
    h = [curves.loc[(100, init)]['pc_orthogonal'] for init in (0, 1)]
    return (f'`h_t` peaks at steps {h[0].idxmax():.0f} and {h[1].idxmax():.0f} '
            f"({fixed(h[0].max(), 2)} and {fixed(h[1].max(), 2)}), and the first init's `g_t` "
            f'keeps oscillating after step {after} ({_sign_changes(first)} sign changes in '
            f'{len(first) - 1} steps, `|g_t|` up to {significant(first.abs().max(), 2)}; the '
            'second '
            f"init's {_sign_changes(second)}), as gradient descent does along a direction its "
            'step overshoots; width 1000 has no sign change there')


def jacot_fig3_coarse_logging() -> str:
    h = _fig3_curves().loc[(100, 0)]['pc_orthogonal']
    every = 8
    coarse = h[h.index % every == 0]
    return (f'the values were logged at {len(coarse)} evenly spaced steps (every {every}), '
            f"which caught {fixed(coarse.max(), 3)} of the first init's peak of "
            f'{fixed(h.max(), 2)}')


# --- results/kopitkov2019 ----------------------------------------------------------

def _kopitkov_summary() -> pd.DataFrame:
    """``alignment_summary.csv``, steps 0 and 2000 of each schedule."""
    rows = table('kopitkov2019/figures/kopitkov2019/alignment_summary.csv')
    return rows.assign(schedule=rows['run'].str.extract(r'schedule=(\w+)', expand=False))


def _kopitkov_series(path: str, metric: str, **columns) -> pd.Series:
    """One constant-schedule metric of a ``kopitkov2019`` table, indexed by step."""
    rows = where(table(path), schedule='constant', metric=metric, **columns)
    assert rows['step'].is_unique
    return rows.set_index('step')['value']


def _lambda_1(path: str = 'kopitkov2019/table.parquet') -> pd.Series:
    return _kopitkov_series(path, 'eigenvalue', kernel='empirical', rank=1.0)


def kopitkov_table() -> str:
    summary = _kopitkov_summary()
    columns = (('lambda_1', 1), ('alignment_centered', 3), ('E_5(target)', 3),
               ('E_5(output)', 3), ('test_accuracy', 3))
    lines = []
    for schedule in ('constant', 'step', 'cosine'):
        rows = where(summary, schedule=schedule).set_index('step').sort_index()
        lines.append(table_row(schedule, *(arrow(rows[c].iloc[[0, -1]], d) for c, d in columns)))
    return '\n'.join(lines)


def kopitkov_alignment() -> str:
    summary = _kopitkov_summary()
    start = one(where(summary, schedule='constant'), 'alignment_centered', step=0)
    end = summary[summary['step'] == summary['step'].max()]['alignment_centered']
    infinite = _kopitkov_series('kopitkov2019/table.parquet', 'alignment_centered',
                                kernel='infinite')
    return (f"rises from {fixed(start, 2)} to {span(end, 2)}, above the infinite-width kernel's "
            f'{fixed(infinite[0], 2)}')


def kopitkov_first_step() -> str:
    lam = _lambda_1()
    change = _kopitkov_series('kopitkov2019/table.parquet', 'ntk_change')
    return (f'Most of the fall is the first step: {fixed(lam[0], 0)} -> {fixed(lam[1], 0)}, and '
            f'the empirical NTK moves by `ntk_change` = {fixed(change[1], 2)} in that one step')


def kopitkov_learning_rate() -> str:
    rows = where(table('kopitkov2019/table.parquet'), schedule='constant')
    lr, max_lr = one(rows, metric='lr_used'), one(rows, metric='max_lr')
    lam = _lambda_1()
    n_y = max_lr * lam[0] / 2  # max_lr = 2N / lambda_1
    assert abs(n_y - round(n_y)) < 1e-3, n_y
    n_y, n_train = round(n_y), int(rows['n_train'].iloc[0])
    low = lam[lam.index > 0].idxmin()
    return (f'(`lr` = {fixed(lr, 2)} = {fixed(lr / max_lr, 1)} x 2N / lambda_1, with N = '
            f"`y.size` = {n_y}, the {n_train} images' {n_y // n_train} centred one-hot targets "
            "that the loss `||f - y||^2 / (2N)` averages over) takes the top mode's residual to "
            f'zero in one step (`lr lambda_1 / N` = {fixed(lr * lam[0] / n_y, 0)}). It then sinks '
            f'to {fixed(lam[low], 0)} (step {int(low)}) and ends at {fixed(lam.iloc[-1], 0)}, '
            'below its start')


def kopitkov_small_learning_rate() -> str:
    path = 'kopitkov2019/lr_fraction_0.1.parquet'
    lam = _lambda_1(path)
    low = lam[lam.index > 0].idxmin()
    change = _kopitkov_series(path, 'ntk_change')
    aligned = _kopitkov_series(path, 'alignment_centered', kernel='empirical')
    accuracy = _kopitkov_series(path, 'accuracy')
    summary = where(_kopitkov_summary(), schedule='constant').set_index('step').sort_index()
    return (f'the first step still moves the NTK by {fixed(change[1], 2)} and `lambda_1` still '
            f'falls, more slowly: {fixed(lam[0], 0)} -> {fixed(lam[1], 0)} (step 1) -> '
            f'{fixed(lam[low], 0)} (step {int(low)}), then grows to {fixed(lam.iloc[-1], 0)} at '
            f'step {int(lam.index[-1])} (back to its start); the centred alignment rises '
            f"{fixed(aligned[0], 2)} -> {fixed(aligned.iloc[-1], 2)} "
            f"({fixed(summary['alignment_centered'].iloc[-1], 2)} at the larger rate) and the "
            f'test accuracy ends at {fixed(accuracy.iloc[-1], 3)} '
            f"({fixed(summary['test_accuracy'].iloc[-1], 3)})")


def kopitkov_output_energy() -> str:
    summary = _kopitkov_summary()
    start = where(summary, step=0)['E_5(output)']
    end = summary[summary['step'] == summary['step'].max()]['E_5(output)']
    assert start.nunique() == 1
    return (f'falls from {fixed(start.iloc[0], 2)} at initialisation (a random, kernel-smooth '
            f'output) to about {fixed(end.mean(), 2)} as the output fits')


def kopitkov_schedules() -> str:
    summary = _kopitkov_summary()
    end = summary[summary['step'] == summary['step'].max()].set_index('schedule')['lambda_1']
    return (f"`lambda_1` in its third panel: {fixed(end['constant'], 1)} constant against "
            f"{fixed(end['step'], 1)} / {fixed(end['cosine'], 1)} at step "
            f"{int(summary['step'].max())}")


# --- results/alignment -------------------------------------------------------------

def _kopitkov_rows(schedule: str, step: float) -> pd.DataFrame:
    return where(table('alignment/table.parquet'), experiment='kopitkov2019',
                 schedule=schedule, step=step)


def _kopitkov_row(label: str, schedule: str, step: float, accuracy_digits=None) -> str:
    """A row of the README's ``kopitkov2019`` table: the empirical NTK at ``step``."""
    rows = _kopitkov_rows(schedule, step)
    empirical = where(rows, kernel='empirical')
    change = one(rows, metric='ntk_change')
    assert step > 0 or change == 0
    energies = [fixed(one(empirical, metric='energy', vector=v, rank=10.0), 3)
                for v in ('target', 'output', 'residual')]
    accuracy = ('' if accuracy_digits is None
                else fixed(one(rows, metric='accuracy'), accuracy_digits))
    return table_row(label, f'{step:g}',
               fixed(one(empirical, metric='eigenvalue', rank=1.0), 1),
               fixed(one(empirical, metric='eigenvalue', rank=2.0), 2),
               fixed(one(empirical, metric='alignment'), 3),
               fixed(one(empirical, metric='alignment_centered'), 3), *energies,
               fixed(change, 3) if step else '0',
               significant(one(rows, metric='loss', split='train'), 3), accuracy)


def alignment_kopitkov_start() -> str:
    infinite = where(_kopitkov_rows('constant', 0.0), kernel='infinite')
    lines = [table_row('infinite', '-', fixed(one(infinite, metric='eigenvalue', rank=1.0), 1),
                 fixed(one(infinite, metric='eigenvalue', rank=2.0), 2),
                 fixed(one(infinite, metric='alignment'), 3),
                 fixed(one(infinite, metric='alignment_centered'), 3),
                 fixed(one(infinite, metric='energy', vector='target', rank=10.0), 3),
                 *[''] * 5)]
    for step, digits in ((0.0, 2), (32.0, None)):
        same = {_kopitkov_row('all', s, step, digits) for s in ('constant', 'step', 'cosine')}
        assert len(same) == 1, same
        lines.append(same.pop())
    return '\n'.join(lines)


def alignment_kopitkov_end() -> str:
    return '\n'.join(_kopitkov_row(schedule, schedule, step, digits) for schedule, step, digits in
                     (('constant', 2000.0, 3), ('step', 1000.0, None), ('step', 2000.0, 3),
                      ('cosine', 2000.0, 3)))


def alignment_kopitkov_ntk_change() -> str:
    rows = where(table('alignment/table.parquet'), experiment='kopitkov2019',
                 metric='ntk_change')
    return f"moves a lot (`ntk_change` {span(rows[rows['step'] > 0]['value'], 1)})"


def _by_step(rows: pd.DataFrame) -> pd.Series:
    return rows.set_index('step')['value'].sort_index()


def alignment_kopitkov_spectrum() -> str:
    rows = where(table('alignment/table.parquet'), experiment='kopitkov2019',
                 schedule='constant')
    empirical = where(rows, kernel='empirical')
    spectrum = where(empirical, metric='eigenvalue').pivot_table(index='step', columns='rank',
                                                                 values='value')
    lam = spectrum[1.0]
    low = lam.idxmin()
    assert (spectrum.iloc[-1] > spectrum.loc[low]).all()  # "all top eigenvalues grow again"
    target = _by_step(where(empirical, metric='energy', vector='target', rank=10.0))
    aligned = _by_step(where(empirical, metric='alignment_centered'))
    infinite = where(rows, kernel='infinite', step=0.0)
    return (f'`lambda_1` falls from {fixed(lam.iloc[0], 0)} to {fixed(lam[low], 0)}; afterwards '
            f'all top eigenvalues grow again (`lambda_1` to {fixed(lam.iloc[-1], 0)}) while the '
            "target's energy in the top-10 eigenvectors rises from "
            f'{fixed(target.iloc[0], 2)} to {fixed(target.iloc[-1], 2)} and the centred '
            f'alignment from {fixed(aligned.iloc[0], 2)} to {fixed(aligned.iloc[-1], 2)}, above '
            "the infinite-width kernel's "
            f"{fixed(one(infinite, metric='energy', vector='target', rank=10.0), 2)} / "
            f"{fixed(one(infinite, metric='alignment_centered'), 2)}")


def alignment_kopitkov_residual() -> str:
    rows = where(table('alignment/table.parquet'), experiment='kopitkov2019',
                 metric='energy', kernel='empirical', vector='residual', rank=10.0)
    start = fixed(one(rows, schedule='constant', step=0.0), 2)
    ends = {fixed(one(rows, schedule=s, step=2000.0), 2) for s in ('constant', 'step', 'cosine')}
    assert len(ends) == 1, ends
    return (f"The residual's energy in the top 10 eigenvectors falls from {start} to "
            f'{ends.pop()}')


def alignment_kopitkov_freeze() -> str:
    rows = where(table('alignment/table.parquet'), experiment='kopitkov2019',
                 metric='eigenvalue', kernel='empirical', rank=1.0)
    rates = where(rows, schedule='step').set_index('step')['lr'].sort_index()
    decay = rates.index[rates < rates.iloc[0]][0]  # the step schedule's first decay

    def since_decay(schedule):
        lam = where(rows, schedule=schedule).set_index('step')['value'].sort_index()
        return arrow((lam[lam.index >= decay].iloc[0], lam.iloc[-1]), 1)

    return (f"(`lambda_1` {since_decay('step')} over the last {int(rates.index[-1] - decay)} "
            f"steps; constant lr: {since_decay('constant')})")


def _defaults_summary() -> pd.DataFrame:
    rows = table('alignment/figures/alignment/alignment_summary.csv')
    return rows.rename(columns={'E_5(target)': 'energy_5'})


def alignment_defaults_table() -> str:
    lines = []
    for r in _defaults_summary().itertuples():
        width, depth = re.search(r'width=(\d+), depth=(\d+)', r.run).groups()
        name = 'FC' if r.run.startswith('FC') else f'WRN-{depth}-1'
        if r.step == 0:
            name += f' (depth {depth}, width {width})' if name == 'FC' else f' (width {width})'
        assert r.step > 0 or r.ntk_change == 0
        lines.append(table_row(name, str(r.step), fixed(r.lambda_1, 1), fixed(r.alignment, 3),
                         fixed(r.alignment_centered, 3), fixed(r.energy_5, 3),
                         fixed(r.ntk_change, 3) if r.step else '0',
                         fixed(r.ntk_distance_infinite, 3), fixed(r.test_accuracy, 2)))
    return '\n'.join(lines)


def alignment_defaults_lazy() -> str:
    summary = _defaults_summary()
    end = summary[summary['step'] == summary['step'].max()]
    fc = end[end['run'].str.startswith('FC')].iloc[0]
    wrn = summary[summary['run'].str.startswith('WRN')].set_index('step').sort_index()
    first = where(table('alignment/table.parquet'), experiment='alignment', metric='energy',
                  vector='target', rank=1.0)['value']
    assert fixed(first.min(), 2) == fixed(first.max(), 2)
    return (f'(NTK change {fixed(100 * fc.ntk_change, 0)}%): spectrum and alignment barely '
            "move. The narrow WRN's kernel changes by "
            f"{fixed(100 * wrn['ntk_change'].iloc[-1], 0)}% (`lambda_1` collapses in the first "
            f'steps, as in `kopitkov2019`), but in {int(wrn.index[-1])} steps its alignment only '
            f"rises from {fixed(wrn['alignment'].iloc[0], 3)} to "
            f"{fixed(wrn['alignment'].iloc[-1], 3)}. With "
            f'one-hot targets `E_1(target) = {fixed(first.max(), 2)}')


def _exponents() -> pd.DataFrame:
    """The fitted decay exponents (``sphere_exponents.csv`` at full precision), one row per
    panel and depth, one column per parity."""
    rows = where(table('alignment/table.parquet'), experiment='resntk_spectrum',
                 metric='decay_exponent')
    panel = rows['model'].str.upper().where(rows['alpha'].isna(),
                                            'ResNet, alpha=' + rows['alpha'].map('{:g}'.format))
    return rows.assign(panel=panel).pivot_table(index=['panel', 'depth'], columns='parity',
                                                values='value', dropna=False)


def alignment_sphere_exponents() -> str:
    frame = _exponents()
    panels = ('FC', 'ResNet, alpha=0.1', 'ResNet, alpha=0.5', 'ResNet, alpha=1')

    def cell(panel, depth):
        exponents = frame.loc[(panel, depth)]
        return fixed(exponents['all'], 3) + (' (even only)' if pd.isna(exponents['odd']) else '')

    depths = sorted(frame.index.get_level_values('depth').unique())
    return '\n'.join(table_row(str(depth), *(cell(p, depth) for p in panels)) for depth in depths)


def alignment_sphere_range() -> str:
    exponents = _exponents()['all']
    deepest = exponents.index.get_level_values('depth').max()
    d = int(where(table('alignment/table.parquet'), experiment='resntk_spectrum')['d'].iloc[0])
    return (f'All exponents are between {fixed(exponents.max(), 2)} and '
            f'{fixed(exponents.min(), 2)}, close to `-d = -{d}`; the deepest FC '
            f"({fixed(exponents[('FC', deepest)], 2)}) and ResNet alpha = 1 "
            f"({fixed(exponents[('ResNet, alpha=1', deepest)], 2)})")


def _sphere(metric: str, **columns) -> pd.DataFrame:
    return where(table('alignment/table.parquet'), experiment='resntk_spectrum',
                 metric=metric, **columns)


def alignment_sphere_shape() -> str:
    shallow, deep = 1, 16

    def shape(model, depth, t, alpha=None):
        rows = _sphere('kernel_shape', model=model, depth=depth)
        return fixed(one(rows if alpha is None else where(rows, alpha=alpha), t=t), 3)

    def ratio(model, depth, degree, digits, alpha=None):
        rows = _sphere('eigenvalue_normalized', model=model, depth=depth, degree=degree)
        return fixed(one(rows if alpha is None else where(rows, alpha=alpha)), digits)

    def ends(model, depth, alpha=None):
        return f'{shape(model, depth, 0.0, alpha)} / {shape(model, depth, -1.0, alpha)}'

    return (f"(FC at `t = 0` / `t = -1`: {ends('fc', shallow)} at depth {shallow}, "
            f"{ends('fc', deep)} at depth {deep}; ResNet alpha = 1: "
            f"{ends('resnet', shallow, 1.0)} -> {ends('resnet', deep, 1.0)}), and the "
            f"normalised spectrum flattens (FC `lambda_1 / k(1)` {ratio('fc', shallow, 1.0, 3)} "
            f"-> {ratio('fc', deep, 1.0, 3)}, `lambda_3 / k(1)` {ratio('fc', shallow, 3.0, 4)} "
            f"-> {ratio('fc', deep, 3.0, 4)} from depth {shallow} to {deep}). With alpha = 0.1 "
            f"the ResNTK keeps its shape (`k(-1)/k(1)` {shape('resnet', shallow, -1.0, 0.1)} -> "
            f"{shape('resnet', deep, -1.0, 0.1)}, `lambda_1 / k(1)` "
            f"{ratio('resnet', shallow, 1.0, 3, 0.1)} -> {ratio('resnet', deep, 1.0, 3, 0.1)})")


def alignment_sphere_mercer() -> str:
    rows = _sphere('mercer_fraction', model='fc')
    shallow, deep = rows['depth'].min(), rows['depth'].max()
    return (f'= {fixed(one(rows, depth=shallow), 3)} (FC depth {shallow}) to '
            f'{fixed(one(rows, depth=deep), 3)} (FC depth {deep})')


def alignment_sphere_gram() -> str:
    rows = where(table('alignment/table.parquet'), experiment='resntk_spectrum', model='fc',
                 depth=4)
    rows = rows[rows['degree'] <= 6]

    def values(metric):
        series = where(rows, metric=metric).set_index('degree')['value'].sort_index()
        return ', '.join(fixed(v, 3 if v >= 0.1 else 4) for v in series)

    return (f"degrees 0-6: Gram {values('gram_eigenvalue')} vs Funk-Hecke "
            f"{values('eigenvalue')}")


# --- results/nads --------------------------------------------------------------------

def _axes(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Masks of the DC direction and of the other axis-aligned directions."""
    dc = (rows['freq_i'] == 0) & (rows['freq_j'] == 0)
    return dc, ((rows['freq_i'] == 0) | (rows['freq_j'] == 0)) & ~dc


def nads_fc_grid() -> str:
    fc = where(table('nads/full_grid.parquet'), model='fc')
    finite = where(fc, metric='accuracy', view='finite')
    ntk = where(fc, metric='accuracy', view='ntk')['value']
    assert ntk.min() == ntk.max()
    return (f"fc: test accuracy {span(finite['value'], 3)} over the {len(finite)} directions "
            '(no structure; the spread is the sampling noise of '
            f"{int(finite['n_test'].iloc[0])} test points and of the training), and its NTK "
            f'regression {fixed(ntk.min(), 3)} for every direction. Its gradient energy is flat '
            f"({span(where(fc, metric='nad_energy')['value'], 2)} times the mean)")


def nads_cnn_grid() -> str:
    grid = table('nads/full_grid.parquet')
    assert (where(grid, model='fc', metric='train_accuracy')['value'] == 1).all()
    cnn = where(grid, model='cnn')
    accuracy = where(cnn, metric='accuracy')
    dc, axis = _axes(accuracy)
    low = axis & (accuracy[['freq_i', 'freq_j']].max(axis=1) <= 3)
    energy = where(cnn, metric='nad_energy')
    energy_dc, energy_axis = _axes(energy)
    value, train = accuracy['value'], where(cnn, metric='train_accuracy')['value']
    return (f'cnn (GAP): {fixed(value[dc].iloc[0], 3)} at the DC frequency (0, 0); '
            f'{span(value[low], 2)} on the frequencies (0, 1..3) and (1..3, 0) of the first row '
            f'and column; {span(value[~dc & ~low], 3)} on the other {(~dc & ~low).sum()} '
            'directions, i.e. about chance: the network does not even fit its training set there '
            f'(train accuracy down to {fixed(train.min(), 2)}, while fc fits every direction '
            'perfectly). The gradient energy at initialisation has the same shape: '
            f"{fixed(energy['value'][energy_dc].iloc[0], 1)} times the mean at DC, "
            f"{span(energy['value'][energy_axis], 2)} on the axes, "
            f"{span(energy['value'][~energy_dc & ~energy_axis], 3)} off them")


def nads_architectures_table() -> str:
    frame = table('nads/architectures.parquet')
    labels = {'fc': 'fc', 'resnet': 'resnet (flat)', 'wrn': 'wrn (WRN-10-1)',
              'myrtle': 'myrtle (Myrtle-5)', 'cnn': 'cnn (CNN-GAP)'}
    lines = []
    for model, label in labels.items():
        accuracy = where(frame, model=model, metric='accuracy')
        dc, _ = _axes(accuracy)
        ratio = one(frame, model=model, metric='nad_participation_ratio')
        lines.append(table_row(label, fixed(accuracy['value'].min(), 3),
                         fixed(accuracy['value'].max(), 3),
                         fixed(accuracy['value'][dc].iloc[0], 3), fixed(ratio, 3)))
    return '\n'.join(lines)


def nads_pooling() -> str:
    frame = where(table('nads/architectures.parquet'), metric='accuracy')
    pooled = frame[frame['model'].isin(['cnn', 'myrtle'])]
    dc, _ = _axes(pooled)
    i, j = pooled['freq_i'], pooled['freq_j']
    partly = ((i == 0) & (j == 2)) | ((i == 2) & (j == 0))
    assert pooled[dc]['value'].map(lambda v: fixed(v, 2)).nunique() == 1
    wrn = where(frame, model='wrn')['value']
    return (f"DC ({fixed(pooled[dc]['value'].iloc[0], 2)}), partly (0, 2) and (2, 0) "
            f"({span(pooled[partly]['value'], 2)}), and {span(pooled[~dc & ~partly]['value'], 3)} "
            'elsewhere. The WRN (strided convolutions, a residual path) learns all ten '
            f'directions at {span(wrn, 2)}')


def nads_kernel_view() -> str:
    frame = where(table('nads/kernel_view.parquet'), metric='accuracy')
    fc, cnn = where(frame, model='fc')['value'], where(frame, model='cnn')
    dc, axis = _axes(cnn)
    assert len(fc) == 10 and (~dc & ~axis).sum() == 5
    return (f'the FC NTK gives {span(fc, 3)} on all ten directions; the CNN-GAP NTK '
            f"{fixed(cnn['value'][dc].iloc[0], 3)} at DC, {span(cnn['value'][axis], 3)} on "
            f"(0, 2), (0, 4), (2, 0), (4, 0), and {span(cnn['value'][~dc & ~axis], 3)} on the "
            'other five')


def _nad_eigenvalues(rows: pd.DataFrame) -> pd.Series:
    return where(rows, metric='nad_eigenvalue').sort_values('nad_index')['value']


def _top_three(rows: pd.DataFrame) -> str:
    eigenvalues = _nad_eigenvalues(rows)
    return ', '.join(fixed(v, 2) for v in eigenvalues.iloc[:3] / eigenvalues.mean())


def nads_spectrum() -> str:
    frame = table('nads/architectures.parquet')
    top = {m: _top_three(where(frame, model=m)) for m in ('fc', 'resnet', 'wrn', 'myrtle', 'cnn')}
    fc = where(frame, model='fc', metric='nad_participation_ratio').iloc[0]
    samples, d = int(fc['n_gradients']), int(fc['image_h'] * fc['image_w'] * fc['channels'])
    ratios = [one(frame, model=m, metric='nad_participation_ratio') for m in ('fc', 'resnet')]
    return (f"Eigenvalues over their mean, first three: fc {top['fc']}; resnet {top['resnet']} "
            f'(a flat spectrum: {samples} gradient samples of an isotropic `G` in d = {d} give a '
            f'participation ratio of about 1 / (1 + {d}/{samples}) = '
            f'{fixed(1 / (1 + d / samples), 2)}, measured {fixed(ratios[0], 2)} and '
            f"{fixed(ratios[1], 2)}); wrn {top['wrn']}; myrtle {top['myrtle']}; cnn {top['cnn']}")


def nads_estimators_table() -> str:
    frame = table('nads/estimators.parquet')
    lines = []
    for label, gradient, point in (("finite differences, step 100 (authors')",
                                    'finite_difference', 'fixed'),
                                   ('exact (autodiff)', 'exact', 'fixed'),
                                   ('exact (autodiff)', 'exact', 'random')):
        rows = where(frame, gradient=gradient, eval_point=point)
        first = rows.iloc[0]
        at = ('fixed x0' if point == 'fixed'
              else f"random x, {int(first['points_per_network'])} per net")
        # The x0 overlap of NAD 0; there is no single x0 to compare with at random points.
        overlap = rows[(rows['metric'] == 'nad_x0_overlap') & (rows['nad_index'] == 0)]
        energy = where(rows, metric='nad_energy')
        lines.append(table_row(label, at, str(int(first['n_gradients'])),
                         fixed(one(rows, metric='nad_participation_ratio'), 3),
                         _top_three(rows),
                         fixed(one(overlap), 2) if len(overlap) else '-',
                         f'{fixed(one(energy, freq_i=0.0, freq_j=0.0), 2)} / '
                         f'{fixed(one(energy, freq_i=4.0, freq_j=4.0), 3)}'))
    return '\n'.join(lines)


def nads_exact_artefact() -> str:
    rows = where(table('nads/estimators.parquet'), gradient='exact', eval_point='fixed')
    eigenvalues = _nad_eigenvalues(rows)
    return (f"overlap {fixed(one(rows, metric='nad_x0_overlap', nad_index=0.0), 2)}, see the "
            "estimator table above: the CNN's participation ratio "
            f"{fixed(one(rows, metric='nad_participation_ratio'), 2)} and top-NAD share "
            f'{fixed(eigenvalues.iloc[0] / eigenvalues.sum(), 2)}')


def nads_repro_table() -> str:
    frame = table('nads/table.parquet')
    accuracy = where(frame, metric='accuracy')
    fc, cnn = where(accuracy, model='fc')['value'], where(accuracy, model='cnn')
    dc, axis = _axes(cnn)
    axis |= dc  # "the directions with i = 0 or j = 0"

    def nads(model):
        eigenvalues = _nad_eigenvalues(where(frame, model=model))
        ratio = one(frame, model=model, metric='nad_participation_ratio')
        return fixed(ratio, 3), eigenvalues.iloc[0] / eigenvalues.sum()

    (fc_ratio, fc_share), (cnn_ratio, cnn_share) = nads('fc'), nads('cnn')
    return '\n'.join([
        table_row('FC', f'{span(fc, 3)} on every direction (isotropic)',
                  f'{fc_ratio} (flat spectrum)', fixed(fc_share, 3)),
        table_row('CNN (4 conv + GAP)',
            f"{span(cnn['value'][axis], 2)} on the {axis.sum()} directions with `i = 0` or "
            f"`j = 0`; {span(cnn['value'][~axis], 2)} (chance) on the {(~axis).sum()} others",
            cnn_ratio, fixed(cnn_share, 2))])


# --- results/huang2020 ---------------------------------------------------------------

DATASETS = ('mnist', 'cifar10')


def _depth(model: str, kernel: str, metric: str, dataset: str, gamma=None) -> pd.Series:
    """Mean over the runs, indexed by depth, from ``figures/kernel_regression/depth.csv``."""
    rows = where(table('huang2020/figures/kernel_regression/depth.csv'), model=model,
                 kernel=kernel, metric=metric, dataset=dataset)
    rows = rows if gamma is None else where(rows, alpha_gamma=gamma)
    return rows.set_index('depth')['mean'].sort_index()


def _ends(series: pd.Series, digits=(3, 3), bold: bool = False) -> str:
    mark = '**' if bold else ''
    return (f'{fixed(series.iloc[0], digits[0])} -> '
            f'{mark}{fixed(series.iloc[-1], digits[1])}{mark}')


def _depth_row(label: str, model: str, kernel: str, metric: str, gamma=None, **ends) -> str:
    return table_row(label, *(_ends(_depth(model, kernel, metric, ds, gamma), **ends)
                        for ds in DATASETS))


def huang_accuracy_rows() -> str:
    return '\n'.join([
        _depth_row('FC NTK, accuracy', 'fc', 'ntk', 'accuracy', bold=True),
        _depth_row('FC NNGP, accuracy', 'fc', 'nngp', 'accuracy'),
        _depth_row('ResNet gamma = 1/2, accuracy', 'resnet', 'ntk', 'accuracy', 0.5),
        _depth_row('ResNet gamma = 1, accuracy', 'resnet', 'ntk', 'accuracy', 1.0)])


def huang_geometry_rows() -> str:
    means = [f"{_ends(_depth('fc', 'ntk', 'kernel_cos_mean', ds))} / "
             f"{_ends(_depth('fc', 'nngp', 'kernel_cos_mean', ds))}" for ds in DATASETS]
    return '\n'.join([
        _depth_row('FC NTK, cosine spread', 'fc', 'ntk', 'kernel_cos_std', digits=(3, 4)),
        _depth_row('FC NNGP, cosine spread', 'fc', 'nngp', 'kernel_cos_std', digits=(3, 5)),
        table_row('FC NTK / NNGP, mean cosine', *means),
        _depth_row('ResNet gamma = 1/2, cosine spread', 'resnet', 'ntk', 'kernel_cos_std', 0.5),
        _depth_row('FC NTK, centred alignment', 'fc', 'ntk', 'kernel_alignment'),
        _depth_row('ResNet gamma = 1/2, centred alignment', 'resnet', 'ntk', 'kernel_alignment',
                   0.5)])


def huang_spread_exponents() -> str:
    """Least-squares slopes of log spread on log depth from depth 16 on; the exponent
    quoted for both datasets together is their mean."""
    first = 16

    def slope(kernel, dataset):
        spread = _depth('fc', kernel, 'kernel_cos_std', dataset)
        spread = spread[spread.index >= first]
        return np.polyfit(np.log(spread.index), np.log(spread.to_numpy()), 1)[0]

    ntk, nngp = ([slope(k, ds) for ds in DATASETS] for k in ('ntk', 'nngp'))
    last = _depth('fc', 'ntk', 'kernel_cos_std', 'mnist').index.max()
    return (f"The spread of the NTK's cosines falls as `L^{fixed(np.mean(ntk), 1)}` (fitted "
            f'over depths {first}-{last}: {fixed(ntk[0], 2)} MNIST, {fixed(ntk[1], 2)} '
            f"CIFAR-10), the NNGP's as `L^{fixed(np.mean(nngp), 1)}`")


def _size(path: str, column: str, **columns) -> float:
    """The one ``n_train`` or ``n_test`` of a table's runs (on their ``kernel_seconds`` rows)."""
    return where(table(path), metric='kernel_seconds', **columns)[column].unique().item()


def _fc_ntk_loss(dataset: str) -> float:
    accuracy = _depth('fc', 'ntk', 'accuracy', dataset)
    return accuracy.iloc[0] - accuracy.iloc[-1]


def huang_fc_loss_mnist() -> str:
    return f"The FC NTK loses {fixed(_fc_ntk_loss('mnist'), 3)} on MNIST"


def huang_fc_loss_cifar() -> str:
    loss = _fc_ntk_loss('cifar10')
    n_test = int(_size('huang2020/table.parquet', 'n_test', dataset='cifar10'))
    images = loss * n_test
    assert abs(images - round(images)) < 1e-6, images
    return f'and {fixed(loss, 3)} on CIFAR-10 ({round(images)} of {n_test} images,'


def huang_nngp_loss() -> str:
    spread = {fixed(_depth('fc', 'ntk', 'kernel_cos_std', ds).iloc[-1], 3) for ds in DATASETS}
    assert len(spread) == 1, spread
    last = _depth('fc', 'ntk', 'accuracy', 'mnist').index.max()
    nngp = [_depth('fc', 'nngp', 'accuracy', ds) for ds in DATASETS]
    return (f'At depth {last} the spread is still {spread.pop()}, not zero, and the solve is '
            'float64, so the kernel still separates the classes a little: the decline is '
            'gradual, not a collapse to chance. The NNGP loses less in accuracy '
            f"({' / '.join(fixed(a.iloc[0] - a.iloc[-1], 3) for a in nngp)})")


def huang_resnet_spread() -> str:
    ends = [_depth('resnet', 'ntk', 'kernel_cos_std', ds, 0.5).iloc[-1] for ds in DATASETS]
    return f'converges ({fixed(ends[0], 3)} MNIST, {fixed(ends[1], 3)} CIFAR-10)'


def huang_linear_limit() -> str:
    linear = where(table('huang2020/linear_depth0.parquet'), kernel='ntk')
    mnist, cifar = where(linear, dataset='mnist'), where(linear, dataset='cifar10')

    def gamma_1(metric, kernel='ntk', dataset='mnist'):
        return _depth('resnet', kernel, metric, dataset, 1.0).iloc[-1]

    cifar_best = where(cifar, metric='accuracy')['value'].max()
    assert fixed(cifar_best, 3) == fixed(gamma_1('accuracy', dataset='cifar10'), 3)
    depth = _depth('resnet', 'ntk', 'accuracy', 'mnist', 1.0).index.max()
    return (f"on MNIST its mean cosine is {fixed(one(mnist, metric='kernel_cos_mean'), 4)} and "
            f"its spread {fixed(one(mnist, metric='kernel_cos_std'), 4)} (gamma = 1 at depth "
            f"{depth}: {fixed(gamma_1('kernel_cos_mean'), 4)}, "
            f"{fixed(gamma_1('kernel_cos_std'), 4)}), its best accuracy "
            f"{fixed(where(mnist, metric='accuracy')['value'].max(), 3)} "
            f"({fixed(gamma_1('accuracy'), 3)} / {fixed(gamma_1('accuracy', 'nngp'), 3)} NTK / "
            f"NNGP); on CIFAR-10 {fixed(cifar_best, 3)}, as gamma = 1's")


def _full_data() -> pd.DataFrame:
    return table('huang2020/full_data_probe.parquet')


def _full_best() -> pd.Series:
    """Best accuracy over ``diag_reg`` with every training image, by (model, depth, kernel)."""
    return (where(_full_data(), metric='accuracy')
            .groupby(['model', 'depth', 'kernel'])['value'].max())


def huang_full_data_table() -> str:
    best = _full_best()

    def cell(model, depth, bold=False):
        mark = '**' if bold else ''
        return (f"{mark}{fixed(best[(model, depth, 'ntk')], 4)}{mark} / "
                f"{fixed(best[(model, depth, 'nngp')], 4)}")

    return '\n'.join([
        table_row('FC', cell('fc', 1), cell('fc', 128, bold=True)),
        table_row('ResNet, `alpha = L^-1/2`', cell('resnet', 1), cell('resnet', 128))])


def huang_full_data_geometry() -> str:
    full = where(_full_data(), kernel='ntk')
    assert set(where(full, model='resnet')['alpha']) == {0.5}

    def ends(model, metric, digits=(3, 3)):
        values = where(full, model=model, metric=metric).set_index('depth')['value']
        return f'{fixed(values[1], digits[0])} -> {fixed(values[128], digits[1])}'

    resnet_alignment = {fixed(v, 3) for v in
                        where(full, model='resnet', metric='kernel_alignment')['value']}
    assert len(resnet_alignment) == 1
    best = _full_best()
    for (model, depth, kernel), value in best.items():  # "every accuracy is higher"
        small = _depth(model, kernel, 'accuracy', 'mnist', 0.5 if model == 'resnet' else None)
        assert value > small[depth], (model, depth, kernel)
    n_train = _size('huang2020/full_data_probe.parquet', 'n_train')
    small_n = _size('huang2020/table.parquet', 'n_train', dataset='mnist')
    return (f"(FC NTK cosine spread {ends('fc', 'kernel_cos_std', (3, 4))}, alignment "
            f"{ends('fc', 'kernel_alignment')}; ResNet {ends('resnet', 'kernel_cos_std')}, "
            f'alignment {resnet_alignment.pop()} at both depths). With '
            f'{fixed(n_train / small_n, 0)}x the data every accuracy is higher')


def huang_full_data_loss() -> str:
    best = _full_best()
    loss = best[('fc', 1, 'ntk')] - best[('fc', 128, 'ntk')]
    return f"the FC NTK's loss at depth 128 is smaller ({fixed(loss, 3)},"


# --- results/huang2020-finite --------------------------------------------------------

FINITE_DEPTHS = (1, 8, 16, 32, 64)


def _finite(model: str, predictor: str, column: str = 'best') -> pd.Series:
    rows = where(table('huang2020-finite/figures/finite_width/finite_width_depth_accuracy.csv'),
                 model=model, predictor=predictor)
    return rows.set_index('depth')[column].sort_index()


def finite_table() -> str:
    def chain(series, bold):
        cells = [fixed(series[d], 3) for d in FINITE_DEPTHS]
        if bold:
            cells[-1] = f'**{cells[-1]}**'
        return ' -> '.join(cells)

    rows = (('centred network', 'net_centered', 'best', True),
            ('its NTK dynamics (`f_0 = 0`)', 'ntk_mean', 'best', False),
            ('NTK kernel, `t = inf`', 'ntk_kernel', 'final', False),
            ('NTK change in training', 'ntk_drift', 'final', True),
            ('plain network', 'net', 'best', False))
    return '\n'.join(table_row(label, *(chain(_finite(m, predictor, column), bold)
                                  for m in ('fc', 'resnet')))
                     for label, predictor, column, bold in rows)


def finite_kernels() -> str:
    fc, resnet = (_finite(m, 'ntk_kernel', 'final') for m in ('fc', 'resnet'))
    gap = max((_finite(m, 'ntk_mean', 'final') - _finite(m, 'ntk_kernel', 'final')).abs().max()
              for m in ('fc', 'resnet'))
    steps = int(table('huang2020-finite/table.parquet')['step'].max())
    return (f'the FC NTK loses accuracy with depth ({_ends(fc)}) and the ResNTK does not '
            f"({_ends(resnet)}). The {steps} steps reach the kernels' `t = inf` accuracy: the "
            f'`f_0 = 0` dynamics end within {fixed(gap, 3)} of it')


def finite_drift() -> str:
    drift = _finite('fc', 'ntk_drift', 'final')
    first, last = drift.index.min(), drift.index.max()
    return (f'The NTK change grows {fixed(drift[last] / drift[first], 0)}x, from '
            f'{fixed(drift[first], 2)} at depth {first} to {fixed(drift[last], 2)} at depth '
            f'{last}')


def finite_gap() -> str:
    gap = _finite('fc', 'ntk_mean') - _finite('fc', 'net_centered')
    return (f"The centred network's gap to its NTK dynamics grows from {fixed(gap.iloc[0], 3)} "
            f'to {fixed(gap.iloc[-1], 2)}')


def finite_depth_64() -> str:
    centred, kernel = _finite('fc', 'net_centered'), _finite('fc', 'ntk_kernel', 'final')
    last = centred.index.max()
    return (f'At depth {last} the network ({fixed(centred[last], 3)}) is '
            f'{fixed(kernel[last] - centred[last], 2)} below the kernel it should approximate. '
            "The kernel's own depth degeneracy accounts for "
            f"{fixed(kernel.iloc[0] - kernel[last], 2)} of the FC's loss")


def finite_resnet() -> str:
    centred = _finite('resnet', 'net_centered')
    gap = (_finite('resnet', 'ntk_mean') - centred).abs().max()
    return (f"Its NTK change is {span(_finite('resnet', 'ntk_drift', 'final'), 2)} at every "
            f'depth. - Its centred network keeps {span(centred, 3)}, within {fixed(gap, 2)} '
            'of its dynamics')


def finite_advantage() -> str:
    last = max(FINITE_DEPTHS)
    networks = _finite('resnet', 'net_centered')[last] - _finite('fc', 'net_centered')[last]
    kernels = (_finite('resnet', 'ntk_kernel', 'final')[last]
               - _finite('fc', 'ntk_kernel', 'final')[last])
    return f'kernels: {fixed(networks, 2)} at depth {last}, against {fixed(kernels, 2)}'


def finite_plain() -> str:
    fc = _finite('fc', 'net')
    return (f"The ResNet's stays at {span(_finite('resnet', 'net'), 2)}; the FC net's falls "
            f'with depth, {_ends(fc)}')


CLAIMS = {
    'jacot2018': [jacot_fig1_table, jacot_fig1_scaling, jacot_fig1_fit, jacot_fig2_table,
                  jacot_fig2_drift, jacot_fig3_eigenvalues, jacot_fig3_learning_rate,
                  jacot_fig3_table, jacot_fig3_straight_line, jacot_fig3_decay,
                  jacot_fig3_small_lambda_2, jacot_fig3_oscillation, jacot_fig3_coarse_logging],
    'kopitkov2019': [kopitkov_table, kopitkov_alignment, kopitkov_first_step,
                     kopitkov_learning_rate, kopitkov_small_learning_rate,
                     kopitkov_output_energy, kopitkov_schedules],
    'alignment': [alignment_kopitkov_start, alignment_kopitkov_end, alignment_kopitkov_ntk_change,
                  alignment_kopitkov_spectrum, alignment_kopitkov_residual,
                  alignment_kopitkov_freeze, alignment_defaults_table, alignment_defaults_lazy,
                  alignment_sphere_exponents, alignment_sphere_range, alignment_sphere_shape,
                  alignment_sphere_mercer, alignment_sphere_gram],
    'nads': [nads_fc_grid, nads_cnn_grid, nads_architectures_table, nads_pooling,
             nads_kernel_view, nads_spectrum, nads_estimators_table, nads_exact_artefact,
             nads_repro_table],
    'huang2020': [huang_accuracy_rows, huang_geometry_rows, huang_spread_exponents,
                  huang_fc_loss_mnist, huang_fc_loss_cifar, huang_nngp_loss, huang_resnet_spread,
                  huang_linear_limit, huang_full_data_table, huang_full_data_geometry,
                  huang_full_data_loss],
    'huang2020-finite': [finite_table, finite_kernels, finite_drift, finite_gap, finite_depth_64,
                         finite_resnet, finite_advantage, finite_plain],
}


def test_significant_digits_round_halves_up():
    assert significant(0.0030336, 2) == '0.0030' and significant(0.0375, 2) == '0.038'
    assert significant(177.25, 3) == '177' and scientific(0.0058255) == '5.8e-3'


@pytest.mark.parametrize('study, claim', [(s, c) for s, claims in CLAIMS.items() for c in claims],
                         ids=lambda value: getattr(value, '__name__', value))
def test_readme_states_what_the_tables_give(study, claim):
    assert_readme_says(RESULTS / study / 'README.md', claim())
