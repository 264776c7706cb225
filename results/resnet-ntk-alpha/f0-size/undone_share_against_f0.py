"""The undone share of every centring sweep in results/resnet-ntk-alpha/ against
the size of the net's initial function, f0_over_y = |f_0|^2 / |y|^2.

Reads the committed ``*_ntk_scale_centering_terms.csv`` of each sweep (written by
``ntkexp plot``), keeps widths >= 512 (below, ``from_y`` changes sign: not the
perturbative regime) and per net and width the sweep with most seeds, and
writes ``undone_share_against_f0.csv`` and ``.png`` beside this file. Run from
the repository root:

    .venv/bin/python results/resnet-ntk-alpha/f0-size/undone_share_against_f0.py
"""

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

STUDY = Path('results/resnet-ntk-alpha')
SWEEPS = ['', 'depth8', 'fc-depth8', 'fc-nobias', 'layer-centering', 'f0-size', 'depth8-seeds']
CSV = 'figures/ntk_drift_centering/ntk_drift_centering_ntk_scale_centering_terms.csv'
COLUMNS = ['sweep', 'net', 'width', 'seeds', 'from_y', 'from_f0', 'from_f0_squared',
           'undone_share', 'f0_over_y', 'undone_share_per_f0',
           'undone_share_per_f0_lo', 'undone_share_per_f0_hi']


def net_label(row: pd.Series, sweep: str) -> str:
    depth = int(row['depth']) if 'depth' in row and pd.notna(row['depth']) else (
        8 if 'depth8' in sweep else 3 if row['model'] == 'fc' else 4)
    if row['model'] == 'fc':
        return f'FC depth {depth}' + (', no biases' if sweep == 'fc-nobias' else '')
    alpha = row['alpha'] if 'alpha' in row and pd.notna(row['alpha']) else 0.5
    normalized = sweep != 'f0-size'
    return (f'ResNet depth {depth}, alpha {alpha:g}, '
            + ('normalised' if normalized else 'not normalised'))


def main() -> None:
    tables = []
    for sweep in SWEEPS:
        table = pd.read_csv(STUDY / sweep / CSV)
        table['sweep'] = sweep or '.'
        table['net'] = [net_label(row, sweep) for _, row in table.iterrows()]
        tables.append(table[table['width'] >= 512])
    # layer-centering/ re-ran seeds 0-2 of the other sweeps' runs (to every
    # digit) and added more, as did depth8-seeds/ for layer-centering/'s
    # depth 8: per net and width the sweep with most seeds.
    table = (pd.concat(tables)[COLUMNS].sort_values(['net', 'width', 'seeds'])
             .drop_duplicates(['net', 'width'], keep='last'))
    out = STUDY / 'f0-size' / 'undone_share_against_f0'
    table.to_csv(out.with_suffix('.csv'), index=False, float_format='%.6g')
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    markers = {512: 's', 1024: 'o', 2048: '^'}
    for i, (net, part) in enumerate(table.groupby('net', sort=True)):
        color = plt.get_cmap('tab10')(i + (i >= 7))  # grey (7) is for widths
        for width, point in part.groupby('width'):
            ax.scatter(point['f0_over_y'], point['undone_share'], color=color,
                       marker=markers[width], s=14 + 3 * point['seeds'],
                       label=net if width == part['width'].min() else None)
    for width, marker in markers.items():
        ax.scatter([], [], color='gray', marker=marker, label=f'width {width}')
    x = [1.5, 16.0]
    for k in (0.28, 0.57):
        ax.plot(x, [k * v for v in x], color='gray', lw=0.8, ls='--')
        ax.annotate(f'{k:g} x', (x[1], k * x[1]), fontsize=7, color='gray')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel(r'$|f_0|^2 / |y|^2$ on the training set (f0_over_y)')
    ax.set_ylabel('undone share of the growth from fitting y')
    ax.set_title('undoing $f_0$ against its size, every centring sweep at width >= 512 '
                 '(marker size: seeds)', fontsize=9)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(out.with_suffix('.png'), dpi=130)


if __name__ == '__main__':
    main()
