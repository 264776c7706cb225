"""Figures of experiment ``nads`` (Ortiz-Jimenez et al. 2020, Figs. 1-2).

* ``nads_accuracy_maps``: test accuracy on the directional data ``D(v)`` for
  each Fourier direction ``v`` (centred frequencies, conjugate pairs drawn
  twice as in the paper's symmetric maps), one row per architecture, one
  column per view (finite network, NTK / NNGP kernel regression), plus the
  gradient energy ``v^T G v / (tr G / d)`` of the NAD covariance ``G``;
* ``nads_images``: the leading NADs as images and their Fourier power
  ``|FFT|^2`` (centred), one pair of rows per architecture;
* ``nads_spectrum``: the eigenvalues of ``G`` (normalised by their mean) against
  their index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp.plots import figures

# Columns that can tell two runs of the same architecture apart in a legend.
_LABEL_COLUMNS = ('readout', 'depth', 'width', 'k', 'alpha', 'layout',
                  'parameterization', 'activation', 'eval_point', 'gradient',
                  'image_h', 'channels', 'epsilon', 'sigma', 'n_train')
_VIEW_NAMES = {'finite': 'finite network', 'ntk': 'NTK regression',
               'nngp': 'NNGP regression'}


def _labels(frame: pd.DataFrame) -> pd.Series:
    """``model`` plus the parameters that vary between its runs."""
    frame = frame.copy()
    frame['model'] = frame['model'].astype(str)
    label = frame['model'].copy()
    for model, group in frame.groupby('model'):
        varying = [c for c in _LABEL_COLUMNS
                   if c in group and group[c].nunique(dropna=True) > 1]
        for column in varying:
            mask = frame['model'] == model
            label[mask] = label[mask] + f' {column}=' + frame.loc[mask, column].map(
                figures.value_text)
    return label


def centred_map(sub: pd.DataFrame, height: int, width: int
                ) -> tuple[np.ndarray, list[int], list[int]]:
    """A centred frequency map from rows with ``freq_i``, ``freq_j``, ``value``.

    Values are averaged over repeated rows (seeds); each value is drawn at
    ``(i, j)`` and at ``(-i, -j)`` (the same direction). Only the measured
    rows and columns of the centred grid are kept.

    Returns:
        ``(image, row_freqs, col_freqs)``: NaN where nothing was measured.
    """
    from ntkexp.anisotropy import signed  # pylint: disable=g-import-not-at-top
    mean = sub.groupby(['freq_i', 'freq_j'])['value'].mean()
    cells = {}
    for (i, j), value in mean.items():
        i, j = int(i), int(j)
        for a, b in ((i, j), (-i, -j)):
            cells[(signed(a, height), signed(b, width))] = float(value)
    rows = sorted({a for a, _ in cells})
    cols = sorted({b for _, b in cells})
    image = np.full((len(rows), len(cols)), np.nan)
    for (a, b), value in cells.items():
        image[rows.index(a), cols.index(b)] = value
    return image, rows, cols


def _ticks(ax, rows: list[int], cols: list[int]) -> None:
    step_r = max(1, len(rows) // 8)
    step_c = max(1, len(cols) // 8)
    ax.set_yticks(range(0, len(rows), step_r))
    ax.set_yticklabels([rows[k] for k in range(0, len(rows), step_r)])
    ax.set_xticks(range(0, len(cols), step_c))
    ax.set_xticklabels([cols[k] for k in range(0, len(cols), step_c)])


def plot_accuracy_maps(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Accuracy per Fourier direction (rows: architectures; columns: views)."""
    plt = figures.pyplot()

    acc = frame[frame['metric'] == 'accuracy']
    energy = frame[frame['metric'] == 'nad_energy']
    if acc.empty and energy.empty:
        return []
    labels = sorted(set(acc['label']) | set(energy['label']))
    views = [v for v in ('finite', 'ntk', 'nngp') if v in set(acc.get('view', []))]
    columns = views + (['energy'] if not energy.empty else [])
    fig, axes = plt.subplots(len(labels), len(columns), squeeze=False,
                             figsize=(3.2 * len(columns), 2.9 * len(labels)))
    # One log colour scale for every energy map, spanning at least [-1, 1].
    log_energy = np.log10(np.clip(energy['value'].to_numpy(float), 1e-6, None))
    e_min = min(-1.0, float(np.floor(log_energy.min()))) if len(log_energy) else -1.0
    e_max = max(1.0, float(np.ceil(log_energy.max()))) if len(log_energy) else 1.0
    for r, label in enumerate(labels):
        for c, column in enumerate(columns):
            ax = axes[r, c]
            if column == 'energy':
                sub = energy[energy['label'] == label]
            else:
                sub = acc[(acc['label'] == label) & (acc['view'] == column)]
            if sub.empty:
                ax.axis('off')
                ax.text(0.5, 0.5, f'{label}: {_VIEW_NAMES.get(column, column)}\n'
                        'not run', ha='center', va='center', fontsize=9,
                        transform=ax.transAxes, color='gray')
                continue
            height, width = int(sub['image_h'].iloc[0]), int(sub['image_w'].iloc[0])
            image, rows, cols = centred_map(sub, height, width)
            if column == 'energy':
                im = ax.imshow(np.log10(np.clip(image, 1e-6, None)),
                               cmap='magma', origin='upper', vmin=e_min,
                               vmax=e_max)
                ax.set_title(f'{label}: NAD energy\n'
                             r'$\log_{10}\, v^\top G v / (\mathrm{tr}\,G/d)$',
                             fontsize=9)
            else:
                im = ax.imshow(image, cmap='RdYlGn', vmin=0.5, vmax=1.0,
                               origin='upper')
                ax.set_title(f'{label}: {_VIEW_NAMES.get(column, column)}\n'
                             'test accuracy', fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            _ticks(ax, rows, cols)
            ax.set_xlabel('horizontal frequency $j$')
            ax.set_ylabel('vertical frequency $i$')
    if views:
        fig.suptitle('Directional inductive bias (Ortiz-Jimenez et al. 2020, '
                     'Fig. 1): linearly separable data along Fourier directions',
                     fontsize=10)
    else:  # NAD runs without accuracy maps: say what the file holds.
        fig.suptitle('NAD energy per Fourier direction (Ortiz-Jimenez et al. '
                     '2020); no accuracy maps in these runs', fontsize=10)
    fig.tight_layout()
    paths = figures.save(fig, out_dir,
                         'nads_accuracy_maps' if views else 'nads_energy_maps')
    return paths


def plot_nad_images(frame: pd.DataFrame, out_dir: Path,
                    n_max: int = 8) -> list[Path]:
    """The leading NADs (channel 0) and their centred Fourier power."""
    plt = figures.pyplot()

    pix = frame[frame['metric'] == 'nad_pixel']
    if pix.empty:
        return []
    pix = pix[pix['channel'] == 0]
    labels = sorted(set(pix['label']))
    n = min(n_max, int(pix['nad_index'].max()) + 1)
    fig, axes = plt.subplots(2 * len(labels), n, squeeze=False,
                             figsize=(1.4 * n, 2.9 * len(labels)))
    for r, label in enumerate(labels):
        sub = pix[pix['label'] == label]
        # One run per label: the first seed's NADs.
        sub = sub[sub['seed'] == sub['seed'].min()]
        height, width = int(sub['image_h'].iloc[0]), int(sub['image_w'].iloc[0])
        for k in range(n):
            one = sub[sub['nad_index'] == k]
            image = np.zeros((height, width))
            image[one['pixel_h'].astype(int), one['pixel_w'].astype(int)] = one['value']
            vmax = np.abs(image).max() or 1.0
            ax = axes[2 * r, k]
            ax.imshow(image, cmap='BrBG', vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f'NAD {k}', fontsize=8)
            if k == 0:
                ax.set_ylabel(label.replace(' ', '\n'), fontsize=7)
            power = np.abs(np.fft.fftshift(np.fft.fft2(image))) ** 2
            ax = axes[2 * r + 1, k]
            ax.imshow(power, cmap='viridis')
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(r'$|\mathrm{FFT}|^2$', fontsize=8)
    fig.suptitle('Neural anisotropy directions (eigenvectors of '
                 r'$E_\theta[\nabla_x f \nabla_x f^\top]$ at initialisation; '
                 'Ortiz-Jimenez et al. 2020, Fig. 2)', fontsize=9)
    fig.tight_layout()
    paths = figures.save(fig, out_dir, 'nads_images')
    return paths


def plot_spectrum(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Eigenvalues of the gradient covariance, normalised by their mean."""
    plt = figures.pyplot()

    ev = frame[frame['metric'] == 'nad_eigenvalue']
    if ev.empty:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    # A line style per series: curves that coincide (FC and a ResNet, both
    # isotropic) stay visible.
    styles = ['-', '--', ':', '-.']
    for i, (label, sub) in enumerate(ev.groupby('label')):
        mean = sub.groupby('nad_index')['value'].mean().sort_index()
        ax.semilogy(mean.index, mean.values / mean.values.mean(), label=label,
                    ls=styles[i % len(styles)], lw=2.0 if i % 4 == 0 else 1.4)
    ax.set_xlabel('NAD index $k$')
    ax.set_ylabel(r'eigenvalue $\lambda_k / \bar\lambda$')
    ax.set_title('Spectrum of the gradient covariance $G$', fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = figures.save(fig, out_dir, 'nads_spectrum')
    return paths


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """All figures of experiment ``nads`` from its long-format rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if frame.empty:
        return []
    frame = frame.copy()
    frame['label'] = _labels(frame)
    paths = []
    paths += plot_accuracy_maps(frame, out_dir)
    paths += plot_nad_images(frame, out_dir)
    paths += plot_spectrum(frame, out_dir)
    return paths
