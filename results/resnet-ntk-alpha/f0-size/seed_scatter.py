"""Which differences in the undone share per unit of ``f0_over_y`` are larger
than the seeds scatter, and how each seed's terms follow its own ``f_0``.

Reads the per-seed centring fits that ``ntkexp plot`` writes beside its
tables (``*_centering_seeds.csv``) of the study's 8-seed sweeps:
``layer-centering/`` (FC depth 3 and the normalised ResNet depth 4 at widths
1024 and 2048, whole kernel and per part), ``depth8-seeds/`` (both at depth 8,
width 1024, whole kernel and per part) and ``f0-size/`` (the ResNet without
normalisation, depths 4 and 8, widths 512 and 1024). Writes beside this file:

- ``seed_scatter_differences.csv``: differences of ``undone_share_per_f0``
  (the ratio of the seed means, as in the tables) with their 95 %
  seed-bootstrap intervals (``scipy.stats.bootstrap``, percentile, seeds of
  the two sides resampled independently, 4000 resamples, generator seed 0):
  between widths and between depths per net, FC against ResNet per part.
- ``seed_scatter_slopes.csv``: within each net and width, seed against seed,
  the slope of ``log |term|`` on ``log f0_over_y`` (each net's and width's
  mean removed, then pooled by least squares), with its standard error: over
  the sweeps at depths 3 and 4, and over all of them; and, for the undone
  share, net against net over the seed means of ``undone_share_against_f0.csv``.

Run from the repository root:

    .venv/bin/python results/resnet-ntk-alpha/f0-size/seed_scatter.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from ntkexp import ntk_drift

STUDY = Path('results/resnet-ntk-alpha')
FIGURES = 'figures/ntk_drift_centering/ntk_drift_centering_ntk_'
TERMS = ['from_y', 'from_f0', 'from_f0_squared', 'f0_over_y']  # undone_share_per_f0's
HERE = STUDY / 'f0-size'
#: The sweeps with 8 seeds: whether their ResNet is variance-normalised, and
#: the depth of a sweep that ran one (then not a column of its tables).
SWEEPS = {'layer-centering': (True, None), 'depth8-seeds': (True, 8),
          'f0-size': (False, None)}


def per_f0(seeds: pd.DataFrame) -> float:
    """``undone_share_per_f0`` of the seed means, as ``ntkexp plot``'s tables."""
    return ntk_drift.undone_share_per_f0(*seeds[TERMS].mean())


def difference(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """``per_f0(first) - per_f0(second)`` with its 95 % seed-bootstrap interval."""
    def statistic(i, j):
        return per_f0(first.iloc[i]) - per_f0(second.iloc[j])

    result = scipy.stats.bootstrap(
        (np.arange(len(first)), np.arange(len(second))), statistic,
        vectorized=False, method='percentile', n_resamples=4000,
        rng=np.random.default_rng(0))
    interval = result.confidence_interval
    return {'first': per_f0(first), 'second': per_f0(second),
            'difference': per_f0(first) - per_f0(second),
            'low': interval.low, 'high': interval.high,
            'beyond_the_seeds': not interval.low <= 0 <= interval.high}


def seed_fits(what: str) -> pd.DataFrame:
    """Each seed's fit (``what``: ``scale`` for the whole kernel,
    ``layer_groups`` per part) of every 8-seed sweep, with ``depth`` and
    ``net`` (e.g. ``ResNet, normalised``) filled in."""
    tables = []
    for sweep, (normalised, depth) in SWEEPS.items():
        path = STUDY / sweep / f'{FIGURES}{what}_centering_seeds.csv'
        if not path.exists():
            continue
        table = pd.read_csv(path)
        if 'depth' not in table:  # one depth in the sweep: not a line column
            if depth is None:
                raise ValueError(f'{path} has no depth column: give {sweep!r} its '
                                 'depth in SWEEPS')
            table['depth'] = depth
        resnet = 'ResNet, ' + ('normalised' if normalised else 'not normalised')
        tables.append(table.assign(net=np.where(table['model'] == 'fc', 'FC', resnet)))
    keys = ['net', 'depth', 'width'] + (['group'] if what != 'scale' else [])
    # depth8-seeds/ re-ran layer-centering/'s 3 depth-8 seeds (to every
    # digit) and 5 more: each seed once.
    fits = pd.concat(tables, ignore_index=True).drop_duplicates(keys + ['seed'], keep='last')
    return fits[fits.groupby(keys)['seed'].transform('count') >= 8]


def differences(whole: pd.DataFrame, parts: pd.DataFrame) -> pd.DataFrame:
    """Between widths and depths per net (whole kernel), FC against the
    normalised ResNet per part at each depth pair (3 with 4, 8 with 8)."""
    rows = []
    for (net, depth), fits in whole.groupby(['net', 'depth']):
        widths = sorted(fits['width'].unique())
        for narrow, wide in zip(widths, widths[1:]):
            rows.append({'comparison': f'width {narrow} - {wide}', 'net': net,
                         'depth': str(depth), 'width': f'{narrow} - {wide}', 'part': 'total',
                         **difference(fits[fits['width'] == narrow],
                                      fits[fits['width'] == wide])})
    for (net, width), fits in whole.groupby(['net', 'width']):
        depths = sorted(fits['depth'].unique())
        for shallow, deep in zip(depths, depths[1:]):
            rows.append({'comparison': f'depth {shallow} - {deep}', 'net': net,
                         'depth': f'{shallow} - {deep}', 'width': str(width), 'part': 'total',
                         **difference(fits[fits['depth'] == shallow],
                                      fits[fits['depth'] == deep])})
    fc, resnet = parts[parts['net'] == 'FC'], parts[parts['net'] == 'ResNet, normalised']
    for (depth, width, group), fc_part in fc.groupby(['depth', 'width', 'group'], sort=False):
        resnet_depth = 4 if depth == 3 else depth
        resnet_part = resnet[(resnet['depth'] == resnet_depth) & (resnet['width'] == width)
                             & (resnet['group'] == group)]
        if len(resnet_part):
            rows.append({'comparison': 'FC - ResNet', 'net': 'FC - ResNet, normalised',
                         'depth': f'{depth} - {resnet_depth}', 'width': str(width),
                         'part': group, **difference(fc_part, resnet_part)})
    return pd.DataFrame(rows)


def slopes(whole: pd.DataFrame) -> pd.DataFrame:
    """Seed against seed within a net, depth and width: how each term follows
    the seed's own ``f_0`` (log-log, each one's mean removed); then net
    against net, the seed means."""
    keys = ['net', 'depth', 'width']
    rows = []
    for nets, seeds in (('depths 3 and 4', whole[whole['depth'] <= 4]),
                        ('every 8-seed sweep', whole)):
        groups = [seeds[k] for k in keys]

        def centred(column, seeds=seeds, groups=groups):
            logs = np.log(seeds[column].abs())
            return logs - logs.groupby(groups).transform('mean')

        for term in ['from_y', 'from_f0', 'from_f0_squared', 'undone_share']:
            fit = scipy.stats.linregress(centred('f0_over_y'), centred(term))
            rows.append({'nets': nets, 'term': term,
                         'slope_on_log_f0_over_y': fit.slope, 'stderr': fit.stderr,
                         'r': fit.rvalue, 'seeds': len(seeds),
                         'nets_and_widths': seeds.groupby(keys).ngroups})
    # Net against net: the seed means of every sweep at widths >= 512
    # (undone_share_against_f0.csv, from undone_share_against_f0.py).
    nets = pd.read_csv(HERE / 'undone_share_against_f0.csv')
    fit = scipy.stats.linregress(np.log(nets['f0_over_y']), np.log(nets['undone_share']))
    rows.append({'nets': 'across nets and widths (seed means)', 'term': 'undone_share',
                 'slope_on_log_f0_over_y': fit.slope, 'stderr': fit.stderr,
                 'r': fit.rvalue, 'seeds': nets['seeds'].sum(),
                 'nets_and_widths': len(nets)})
    return pd.DataFrame(rows)


def main() -> None:
    whole, parts = seed_fits('scale'), seed_fits('layer_groups')
    table = differences(whole, parts)
    table.to_csv(HERE / 'seed_scatter_differences.csv', index=False, float_format='%.4g')
    fits = slopes(whole)
    fits.to_csv(HERE / 'seed_scatter_slopes.csv', index=False, float_format='%.4g')
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(table.round(3).to_string(index=False))
        print(fits.round(3).to_string(index=False))


if __name__ == '__main__':
    main()
