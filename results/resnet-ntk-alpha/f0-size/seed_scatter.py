"""Which differences in the undone share per unit of ``f0_over_y`` are larger
than the seeds scatter, and how each seed's terms follow its own ``f_0``.

Reads the per-seed centring fits that ``ntkexp plot`` writes beside its
tables (``*_centering_seeds.csv``) for the two sweeps with 8 seeds
(``layer-centering/``: FC depth 3 and the normalised ResNet depth 4 at widths
1024 and 2048, whole kernel and per part; ``f0-size/``: the ResNet without
normalisation), and writes beside this file:

- ``seed_scatter_differences.csv``: differences of ``undone_share_per_f0``
  (the ratio of the seed means, as in the tables) with their 95 %
  seed-bootstrap intervals (``scipy.stats.bootstrap``, percentile, seeds of
  the two sides resampled independently, 4000 resamples, generator seed 0):
  width 1024 against 2048 per net, FC against ResNet per part and width.
- ``seed_scatter_slopes.csv``: within each net and width, seed against seed,
  the slope of ``log |term|`` on ``log f0_over_y`` (each net's and width's
  mean removed, then pooled by least squares), with its standard error: over
  the 8-seed sweeps at depths 3 and 4, and with the unnormalised ResNet's
  depth 8 added; and, for the undone share, net against net over the seed
  means of ``undone_share_against_f0.csv``.

Run from the repository root:

    .venv/bin/python results/resnet-ntk-alpha/f0-size/seed_scatter.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

STUDY = Path('results/resnet-ntk-alpha')
FIGURES = 'figures/ntk_drift_centering/ntk_drift_centering_ntk_'
TERMS = ['from_y', 'from_f0', 'from_f0_squared', 'f0_over_y']
HERE = STUDY / 'f0-size'


def per_f0(seeds: pd.DataFrame) -> float:
    """``undone_share_per_f0`` of the seed means, as ``ntkexp plot``'s tables."""
    mean = seeds[TERMS].mean()
    return -(mean['from_f0'] + mean['from_f0_squared']) / mean['from_y'] / mean['f0_over_y']


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


def net_name(model: str, normalize) -> str:
    if model == 'fc':
        return 'FC depth 3'
    return 'ResNet depth 4, ' + ('normalised' if normalize is True or normalize == 'True'
                                 else 'not normalised')


def main() -> None:
    whole = pd.read_csv(STUDY / 'layer-centering' / f'{FIGURES}scale_centering_seeds.csv')
    parts = pd.read_csv(STUDY / 'layer-centering' / f'{FIGURES}layer_groups_centering_seeds.csv')
    unnormalised = pd.read_csv(STUDY / 'f0-size' / f'{FIGURES}scale_centering_seeds.csv')
    whole = whole[whole['depth'].isin([3, 4])]
    parts = parts[parts['depth'].isin([3, 4])]
    unnormalised = unnormalised[unnormalised['depth'] == 4].assign(normalize=False)

    rows = []
    for (model, normalize), net in pd.concat([whole, unnormalised]).groupby(
            ['model', 'normalize'], dropna=False):
        widths = sorted(net['width'].unique())
        for narrow, wide in zip(widths, widths[1:]):
            rows.append({'comparison': f'width {narrow} - {wide}',
                         'net': net_name(model, normalize), 'part': 'total',
                         **difference(net[net['width'] == narrow],
                                      net[net['width'] == wide])})
    for (width, group), part in parts.groupby(['width', 'group'], sort=False):
        rows.append({'comparison': f'FC - ResNet at width {width}',
                     'net': 'FC depth 3 - ResNet depth 4, normalised', 'part': group,
                     **difference(part[part['model'] == 'fc'],
                                  part[part['model'] == 'resnet'])})
    differences = pd.DataFrame(rows)
    differences.to_csv(HERE / 'seed_scatter_differences.csv', index=False,
                       float_format='%.4g')

    # Seed against seed within a net and width: how each term follows the
    # seed's own f_0 (log-log, each net's and width's mean removed).
    everything = pd.concat([
        pd.read_csv(STUDY / 'layer-centering' / f'{FIGURES}scale_centering_seeds.csv'),
        pd.read_csv(STUDY / 'f0-size' / f'{FIGURES}scale_centering_seeds.csv').assign(
            normalize=False)])
    keys = ['model', 'depth', 'normalize', 'width']
    everything = everything[everything.groupby(keys, dropna=False)['seed']
                            .transform('count') >= 8]
    slopes = []
    for nets, seeds in (('depths 3 and 4', everything[everything['depth'] <= 4]),
                        ('all, with the unnormalised depth 8', everything)):
        groups = [seeds[k] for k in keys]

        def centred(column, seeds=seeds, groups=groups):
            logs = np.log(seeds[column].abs())
            return logs - logs.groupby(groups, dropna=False).transform('mean')

        for term in ['from_y', 'from_f0', 'from_f0_squared', 'undone_share']:
            fit = scipy.stats.linregress(centred('f0_over_y'), centred(term))
            slopes.append({'nets': nets, 'term': term,
                           'slope_on_log_f0_over_y': fit.slope, 'stderr': fit.stderr,
                           'r': fit.rvalue, 'seeds': len(seeds),
                           'nets_and_widths': seeds.groupby(keys, dropna=False).ngroups})
    # Against that, net against net: the seed means of every sweep at widths
    # >= 512 (undone_share_against_f0.csv, from undone_share_against_f0.py).
    nets = pd.read_csv(HERE / 'undone_share_against_f0.csv')
    fit = scipy.stats.linregress(np.log(nets['f0_over_y']), np.log(nets['undone_share']))
    slopes.append({'nets': 'across nets and widths (seed means)', 'term': 'undone_share',
                   'slope_on_log_f0_over_y': fit.slope, 'stderr': fit.stderr,
                   'r': fit.rvalue, 'seeds': nets['seeds'].sum(),
                   'nets_and_widths': len(nets)})
    slopes = pd.DataFrame(slopes)
    slopes.to_csv(HERE / 'seed_scatter_slopes.csv', index=False, float_format='%.4g')
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(differences.round(3).to_string(index=False))
        print(slopes.round(3).to_string(index=False))


if __name__ == '__main__':
    main()
