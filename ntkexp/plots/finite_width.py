"""Figures of the ``finite_width`` experiment and its paper-figure configs.

Drawn from the long-format rows (many runs; the ``experiment`` column holds
the config's name, e.g. ``jacot2018_fig1``), each only when the rows have what
it needs; files are named ``<experiment>_<figure>.{png,pdf}``:

* ``ntk_slice`` (Jacot et al. 2018, Fig. 1): the empirical NTK
  ``Theta(x0, x)`` with ``x0 = (1, 0)``, ``x = (cos gamma, sin gamma)`` at
  initialisation and after training, one thin line per seed, per width, and
  the infinite-width NTK (``<experiment>_ntk_slice_change.csv``: how far the
  slice moves, and its distance to the infinite-width one at init);
* ``functions`` (Jacot et al. 2018, Fig. 2): trained network functions on the
  circle against the percentiles of the infinite-width Gaussian;
* ``ntk_drift`` (Li, Luo & Yip 2020; Lee et al. 2019, Fig. 1): relative change
  of the empirical NTK at the last step against the width, log-log, one line
  per model with its fitted slope (theory: about -1/2); the slopes (over all
  widths and over the three widest) go to ``<experiment>_ntk_drift_slopes.csv``;
  with ``experiment.centered``, the centred networks' change
  (``ntk_drift_centered``) dashed beside it;
* ``ntk_drift_alpha`` / ``ntk_drift_center_scale``: with a ResNet run at
  three or more residual-branch scales ``model.alpha`` (or a model at three
  or more centrings ``experiment.center_scale``), the same change against
  it, one line per width, one panel per network (plain, centred) and setting
  of the other swept keys such as ``model.normalize``, and below them the
  signed change of each kernel's scale (``ntk_scale_change*`` rows)
  (``<experiment>_ntk_drift_<key>.csv``; ``experiment=ntk_drift_alpha``,
  ``ntk_drift_centering``); against the centring, the scale change's
  quadratic in ``1 - c`` per line and width
  (``<experiment>_ntk_scale_centering_terms.csv``, each seed's fit in
  ``..._seeds.csv``);
* ``ntk_layers`` (``experiment.ntk_layers``): at each net's widest width, each
  parameter leaf's share of the probe NTK at initialisation and its part of
  the kernel's scale change, network and centred network
  (``<experiment>_ntk_layers.csv``, every width; summed over the input
  layer, hidden layers or residual branches and readout in
  ``<experiment>_ntk_layer_groups.csv``);
* ``ntk_layer_groups_centering``: with ``experiment.ntk_layers`` runs at
  three or more centrings, what fitting ``y`` and undoing ``f_0`` each do to
  each part of the net (the quadratic in ``1 - c`` of
  ``ntk_scale_centering_terms`` part by part; CSVs per part and per leaf,
  and each seed's fit per part);
* ``distance`` (Lee et al. 2019, Fig. 2): RMS distance of the network's test
  outputs to the infinite-width NTK dynamics and to the linearised network at
  the last step against the width, log-log with fitted slopes
  (``<experiment>_distance_slopes.csv``); a predictor that diverged (its
  ``diverged_at_step`` row: a learning rate above ``2 / lambda_max`` of its
  kernel) is left out of this figure and of ``ntk_drift``, which say so, and
  marked in ``curves``;
* ``curves``: test loss along training for the network and its references,
  one panel per width;
* ``finite_vs_kernel`` (Lee et al. 2020, Fig. 1): best test accuracy over
  training of the finite networks against NNGP / NTK kernel regression, per
  model and parameterisation (also ``<experiment>_finite_vs_kernel.csv``).
* ``ensemble`` (Lee et al. 2020, Sec. 3.3): test accuracy (test loss for
  regression) of the ensemble of the first ``K`` seeds' networks at the last
  step against ``K``, per width, for the network and the centred network,
  beside the NTK dynamics from ``f_0 = 0`` at the same time (what an infinite
  ensemble of infinitely wide networks predicts) and the ``t = inf`` kernels;
  and the ensemble's RMS distance to those dynamics against ``K``, log-log,
  with the ``1/sqrt(K)`` of averaging independent initial functions
  (``<experiment>_ensemble.csv``: the values drawn);
* ``l2`` (Lee et al. 2020, Sec. 3): with runs at three or more
  ``experiment.l2`` strengths, the network's test accuracy (best over
  training, mean +- std over seeds; final dotted) against ``l2`` and against
  the decay exponent ``l2 * t`` (``t = lr * steps``: weight decay alone
  would shrink the weights by ``exp(-l2 t)``, which puts parameterisations
  with very different learning rates on one axis), one line per model,
  parameterisation and L2 centre, beside the NNGP / NTK kernels at ``t =
  inf`` (``<experiment>_l2.csv``);
* ``lr`` (Lee et al. 2020, Sec. 3; Lewkowycz et al. 2020): with runs at three
  or more ``experiment.lr_fraction`` values (the learning rate in units of
  the stability bound ``2 / lambda_max``), against that fraction: the
  network's test accuracy (best over training, mean +- std over seeds; final
  dotted) beside the kernels, its RMS distance to the NTK dynamics from the
  same ``f_0`` and the relative change of its empirical NTK at the last
  step, and the peak of its training loss over the step-0 loss
  (above 1: the loss rose before it fell, the catapult of Lewkowycz et al.);
  runs that diverged are counted, not drawn (``<experiment>_lr.csv``);
* ``width_accuracy`` (Lee et al. 2020, Sec. 3): with three or more widths,
  test accuracy (best over training, mean +- std over seeds; final dotted)
  and the test loss at the last step against the width for the network, the
  centred network and the NTK dynamics, beside the kernels at ``t = inf``
  (``<experiment>_width_accuracy.csv``);
* ``nth`` (Huang & Yau 2020; with ``experiment.nth``): at the last step
  against the width, log-log, one column per model (and activation), the
  residual ``||Theta_t - Theta_0 - P|| / ||Theta_t - Theta_0||`` of the
  predictions ``P`` of the NTK's change: the hierarchy truncated at
  ``K^(3)`` along the linearised network, at ``K^(4)`` along gradient
  descent to second order (``nth2``, where the run has it), and the
  first- and second-order
  Taylor expansions along the network's own displacement; below, the actual
  and the predicted change
  (``<experiment>_nth_slopes.csv``; ``<experiment>_nth.csv``: mean and std
  over seeds of every ``nth_*`` / ``taylor*`` / ``ntk_drift`` row per step);
* ``functions_coverage.csv`` beside ``functions``: how many network outputs
  fall between the Gaussian's percentiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntkexp import ntk_drift
from ntkexp.plots import drift_tables
from ntkexp.plots import figures
from ntkexp.plots.rows import last_step, line_columns

MODEL_LABELS = figures.MODEL_LABELS
#: Accuracy of guessing, drawn on accuracy bar charts of these datasets.
CHANCE = {'cifar10': 0.1, 'mnist': 0.1, 'digits': 0.1, 'fashion_mnist': 0.1,
          'cifar100': 0.01}
PREDICTOR_LABELS = {'net': 'network', 'linearized': 'linearised network',
                    'net_centered': 'centred network $f_t - f_0$',
                    'ntk': 'NTK dynamics (same $f_0$)',
                    'ntk_mean': 'NTK dynamics ($f_0=0$)',
                    'infinite': r'$n=\infty$'}
PREDICTOR_STYLE = {'net': '-', 'linearized': '--', 'ntk': ':', 'ntk_mean': '-.',
                   'net_centered': '-'}


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    return figures.save(fig, out_dir, name, dpi=110)


def _save_with_slopes(fig, out_dir: Path, name: str,
                      fits: list[dict]) -> list[Path]:
    """The figure ``name`` and its fitted slopes as ``<name>_slopes.csv``."""
    table = out_dir / f'{name}_slopes.csv'
    paths = _save(fig, out_dir, name)
    pd.DataFrame(fits).to_csv(table, index=False)
    return paths + [table]


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without ``attrs`` (a run's summary table breaks joins)."""
    frame = frame.copy(deep=False)
    frame.attrs = {}
    return frame


def _metric(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    return frame[frame['metric'] == metric]


def _model_label(frame: pd.DataFrame, key, columns: list[str] | None = None) -> str:
    parts = []
    values = key if isinstance(key, tuple) else (key,)
    for column, value in zip(columns or line_columns(frame), values):
        if column == 'model':
            parts.append(MODEL_LABELS.get(str(value), str(value)))
        elif not pd.isna(value):  # NaN: the run kept the config's default
            parts.append(f'{column}={figures.value_text(value)}')
    return ', '.join(parts)


#: The reference each distance compares the network with.
_DISTANCE_REFERENCE = {'dist_ntk': 'ntk', 'dist_linearized': 'linearized'}
_RUN_KEYS = ['run_dir', 'width', 'seed']


def _diverged(frame: pd.DataFrame) -> set[tuple]:
    """``(run_dir, width, seed, predictor)``, as strings, of every predictor
    whose training diverged (the experiment's ``diverged_at_step`` rows: a
    learning rate above ``2 / lambda_max`` of its kernel)."""
    rows = _metric(frame, 'diverged_at_step')
    keys = rows.reindex(columns=_RUN_KEYS + ['predictor']).astype(str)
    return set(keys.itertuples(index=False, name=None))


def _split_diverged(rows: pd.DataFrame, diverged: set[tuple],
                    predictors) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, dropped)``: a row is dropped when one of ``predictors(metric)``
    diverged in its run, width and seed (its value then measures the blow-up,
    not the network)."""
    if not diverged or rows.empty:
        return rows, rows.iloc[:0]
    keys = rows.reindex(columns=_RUN_KEYS).astype(str).itertuples(
        index=False, name=None)
    bad = np.array([any((*key, p) in diverged for p in predictors(metric))
                    for key, metric in zip(keys, rows['metric'])], bool)
    return rows[~bad], rows[bad]


def _note_diverged(ax, dropped: pd.DataFrame, diverged: set[tuple],
                   predictors) -> None:
    """One line under ``ax`` naming the predictors, widths and seeds not
    drawn because they diverged (none when nothing was dropped)."""
    if dropped.empty:
        return
    seeds: dict[tuple, set] = {}
    keys = dropped.reindex(columns=_RUN_KEYS).astype(str).itertuples(
        index=False, name=None)
    for key, metric, width, seed in zip(keys, dropped['metric'], dropped['width'],
                                        dropped.reindex(columns=['seed'])['seed']):
        for p in predictors(metric):
            if (*key, p) in diverged:
                seeds.setdefault((PREDICTOR_LABELS.get(p, p), int(width)),
                                 set()).add(str(seed))
    parts = [f"{what} at width {width} (seed {', '.join(sorted(s))})"
             for (what, width), s in sorted(seeds.items())]
    ax.text(0.5, -0.2, 'not drawn, diverged (lr above 2/$\\lambda_{max}$ of its '
            'kernel): ' + '; '.join(parts), fontsize=7, ha='center', va='top',
            transform=ax.transAxes)


def _best_and_final(accuracy: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys`` (one run and seed each): the best test accuracy over the
    evaluation steps (``best``) and the one at the last step (``final``)."""
    runs = accuracy.groupby(keys, dropna=False)['value'].max().rename(
        'best').to_frame()
    runs['final'] = last_step(accuracy).groupby(keys, dropna=False)[
        'value'].mean()
    return runs


def _converged(rows: pd.DataFrame, diverged: set[tuple]) -> pd.DataFrame:
    """``rows`` less those of a predictor that diverged in its run, width
    and seed (each row checked against its own predictor)."""
    if not diverged or rows.empty:
        return rows
    return pd.concat([_split_diverged(part, diverged, lambda _, p=p: (p,))[0]
                      for p, part in rows.groupby('predictor', dropna=False)])


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws every figure the rows allow, per experiment name.

    Args:
        frame: the experiment's long-format rows (``ntkexp collect``).
        out_dir: where the PNG / PDF files go.

    Returns:
        The paths written.
    """
    frame = _plain(frame)
    out_dir = Path(out_dir)
    paths: list[Path] = []
    names = (frame['experiment'].dropna().unique()
             if 'experiment' in frame.columns else ['finite_width'])
    for name in names:
        rows = (frame[frame['experiment'] == name]
                if 'experiment' in frame.columns else frame)
        for draw in (plot_ntk_slice, plot_functions, plot_ntk_drift,
                     plot_distance, plot_curves, plot_finite_vs_kernel,
                     plot_ensemble, plot_l2, plot_lr, plot_width_accuracy,
                     plot_depth_accuracy, plot_nth, plot_ntk_layers,
                     plot_ntk_layer_centering):
            paths += draw(rows, out_dir, str(name))
    return paths


def plot_ntk_slice(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Jacot et al. 2018, Fig. 1: ``Theta(x0, x)`` at init and after training.

    Left: the slices (solid: first recorded step, dashed: last), one thin
    line per seed, and the infinite-width NTK; right: how much each seed's
    slice moved, ``Theta_T(x0, x) - Theta_0(x0, x)``, per width.
    """
    frame = _plain(frame)
    rows = _metric(frame, 'ntk_slice')
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
    paths = _save(fig, out_dir, f'{name}_ntk_slice')
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
    frame = _plain(frame)
    rows = _metric(frame, 'function')
    if rows.empty or 'gamma' not in rows.columns:
        return []
    plt = figures.pyplot()
    widths = sorted(rows['width'].dropna().unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(5 * len(widths), 3.8),
                             squeeze=False, sharey=True)
    perc = _metric(frame, 'ensemble_percentile')
    targets = _metric(frame, 'train_target')
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
    paths = _save(fig, out_dir, f'{name}_functions')
    coverage = percentile_coverage(rows, perc, _metric(frame, 'ensemble_mean'),
                                   _metric(frame, 'ensemble_std'))
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


def line_key(key) -> tuple[str, ...]:
    """A line's group key as strings (NaN, a key of its own, is then equal
    to itself)."""
    return tuple(str(v) for v in (key if isinstance(key, tuple) else (key,)))


def loglog_by_model(ax, rows: pd.DataFrame, label_prefix: str = '',
                     style: str = 'o-', columns: list[str] | None = None,
                     colours: dict | None = None) -> list[dict]:
    """Mean +- std over seeds against width per line; fitted slopes.

    The slope is fitted to every (width, seed) point; ``slope_3_widest`` only
    to the three widest widths (the asymptotic regime). ``columns`` (default
    :func:`line_columns`) tell the lines apart; ``colours`` maps a line's key
    to its colour (default: the axes' cycle), keyed by :func:`line_key`.
    """
    fits = []
    columns = columns or line_columns(rows)
    for key, part in rows.groupby(columns, dropna=False):
        stats = part.groupby('width')['value'].agg(['mean', 'std']).sort_index()
        label = _model_label(rows, key, columns)
        try:
            slope, intercept = ntk_drift.loglog_slope(part['width'], part['value'])
        except ValueError:
            slope = intercept = float('nan')
        top = sorted(part['width'].unique())[-3:]
        wide_slope = None
        if len(stats) > 3:
            wide = part[part['width'].isin(top)]
            wide_slope = ntk_drift.loglog_slope(wide['width'], wide['value'])[0]
        # One width has no slope: the label says so instead of "slope nan".
        text = (f'{label_prefix}{label}: slope {slope:.2f}' if np.isfinite(slope)
                else f'{label_prefix}{label} (one width: no slope)')
        if wide_slope is not None:
            text += f' (3 widest: {wide_slope:.2f})'
        colour = {} if colours is None else {'color': colours[line_key(key)]}
        line = ax.errorbar(stats.index, stats['mean'],
                           yerr=stats['std'].fillna(0), fmt=style, ms=4,
                           capsize=2, label=text, **colour)
        if np.isfinite(slope):
            w = np.array([stats.index.min(), stats.index.max()], float)
            ax.plot(w, np.exp(intercept) * w ** slope, ':',
                    color=line[0].get_color(), lw=1)
        fit = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        fit.update(slope=slope, intercept=intercept,
                   widths=len(stats), points=len(part))
        if wide_slope is not None:
            fit['slope_3_widest'] = wide_slope
        fits.append(fit)
    ax.set_xscale('log')
    ax.set_yscale('log')
    return fits


#: The NTK changes ``plot_ntk_drift`` draws: metric -> (the predictor whose
#: divergence drops its rows, legend prefix, line style).
DRIFTS = {'ntk_drift': ('net', '', 'o-'),
          'ntk_drift_centered': ('net_centered', 'centred ', 's--')}
#: The legs of each change (:func:`ntkexp.ntk_drift.scale_and_shape_change`):
#: the signed change of the kernel's scale and the change of its shape ->
#: the :data:`DRIFTS` metric they split.
DRIFT_PARTS = {'ntk_scale_change': 'ntk_drift',
               'ntk_scale_change_centered': 'ntk_drift_centered',
               'ntk_shape_change': 'ntk_drift',
               'ntk_shape_change_centered': 'ntk_drift_centered'}
#: Numeric keys the change is drawn against when a model ran at 3 or more of
#: their values: key -> x-axis label.
DRIFT_SWEEPS = {
    'alpha': r'residual-branch scale $\alpha$',
    'center_scale': r'centring $c$ (the centred net is $f - c f_0$)'}


def _drift_predictors(metric: str) -> tuple[str]:
    """The predictor whose divergence drops a drift (or drift part) row."""
    return (DRIFTS[DRIFT_PARTS.get(metric, metric)][0],)


def plot_ntk_drift(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Relative NTK change at the last step against width, log-log; with
    centred networks (``experiment.centered``) a second panel for theirs
    (dashed), y shared, each line in the same colour in both. Then the
    change against each swept key of :data:`DRIFT_SWEEPS`
    (:func:`plot_ntk_drift_against`; also from runs at one width)."""
    frame = _plain(frame)
    diverged = _diverged(frame)
    everything, dropped = _split_diverged(drift_tables.drift_rows(frame), diverged,
                                          _drift_predictors)
    paths = _plot_ntk_drift_widths(everything, dropped, diverged, out_dir, name)
    for key in DRIFT_SWEEPS:
        paths += plot_ntk_drift_against(everything, out_dir, name, key,
                                        losses=frame)
    return paths


def _plot_ntk_drift_widths(everything: pd.DataFrame, dropped: pd.DataFrame,
                           diverged: set[tuple], out_dir: Path,
                           name: str) -> list[Path]:
    """:func:`plot_ntk_drift`'s figure against the width (2 or more)."""
    dropped = dropped[dropped['metric'].isin(list(DRIFTS))]
    rows = everything[everything['metric'].isin(list(DRIFTS))]
    if rows.empty or rows['width'].nunique() < 2:
        return []
    plt = figures.pyplot()
    metrics = [m for m in DRIFTS if (rows['metric'] == m).any()]
    columns = line_columns(rows)
    keys = list(rows.groupby(columns, dropna=False).groups)
    colours = {line_key(key): (plt.get_cmap('tab20')(i % 20) if len(keys) > 10
                               else f'C{i % 10}') for i, key in enumerate(keys)}
    fig, axes = plt.subplots(1, len(metrics), squeeze=False, sharey=True,
                             figsize=(5.5 * len(metrics), 4))
    fits = []
    for ax, metric in zip(axes[0], metrics):
        _, prefix, style = DRIFTS[metric]
        part = rows[rows['metric'] == metric]
        fits += [{'metric': metric, **fit} for fit in loglog_by_model(
            ax, part, prefix, style, columns, colours)]
        w = np.array(sorted(part['width'].unique()), float)
        # The guides go through a measured point: the highest curve's widest
        # width (the mean over models lay on no curve).
        widest = part[part['width'] == w[-1]]
        anchor = widest.groupby(columns, dropna=False)['value'].mean().max()
        ax.plot(w, anchor * (w / w[-1]) ** -0.5, 'k--', lw=1,
                label=r'$\propto n^{-1/2}$')
        ax.plot(w, anchor * (w / w[-1]) ** -1.0, '-.', color='gray', lw=1,
                label=r'$\propto n^{-1}$')
        ax.plot([], [], ':', color='gray', lw=1, label='least-squares fits')
        ax.set_xlabel('width $n$')
        if len(metrics) > 1:
            ax.set_title('centred networks' if prefix else 'networks',
                         fontsize=10)
        _legend(ax, len(keys), below=len(metrics) > 1)
    axes[0, 0].set_ylabel(r'$\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$')
    steps = rows['step'].iloc[0] if 'step' in rows.columns else None
    title = ('relative change of the empirical NTK' +
             (f' after {steps:g} steps' if steps is not None else ''))
    if len(metrics) > 1:
        fig.suptitle(title)
    else:
        axes[0, 0].set_title(title)
    _note_diverged(axes[0, -1], dropped, diverged, _drift_predictors)
    return _save_with_slopes(fig, out_dir, f'{name}_ntk_drift', fits)


def _legend(ax, lines: int, inside_up_to: int = 3, below: bool = False) -> None:
    """The legend inside the axes for a few lines; for more (where it would
    cover the data) beside them, or ``below`` them (panels side by side)."""
    if lines <= inside_up_to:
        ax.legend(fontsize=8)
    elif below:
        ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.16),
                  borderaxespad=0.0)
    else:
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0)


def drift_against(rows: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean, std and seed count of the last step's NTK change (each metric of
    :data:`DRIFTS` and :data:`DRIFT_PARTS`) per model, width and value of
    ``key`` (one of :data:`DRIFT_SWEEPS`: the ResNet's ``model.alpha``, the
    centred net's ``experiment.center_scale``), one row each; empty unless
    some model was run at 3 or more values of ``key``."""
    if key not in rows.columns:
        return pd.DataFrame()
    rows = drift_tables.drift_rows(rows)
    rows = rows[rows[key].notna()]
    swept = [m for m, part in rows.groupby('model') if part[key].nunique() >= 3]
    rows = rows[rows['model'].isin(swept)]
    if rows.empty:
        return pd.DataFrame()
    keys = (['metric', 'model']
            + [c for c in line_columns(rows, without=(key,)) if c != 'model']
            + ['width', key])
    stats = (rows.groupby(keys, dropna=False)['value']
             .agg(['mean', 'std', 'count']).reset_index())
    return stats.rename(columns={'count': 'seeds'})


def plot_ntk_drift_against(rows: pd.DataFrame, out_dir: Path, name: str,
                           key: str, losses: pd.DataFrame | None = None
                           ) -> list[Path]:
    """The NTK change at the last step against ``key`` (:data:`DRIFT_SWEEPS`),
    one line per width, one column of panels per setting of the other swept
    keys (e.g. ``normalize``); drawn when a model ran at 3 or more values of
    ``key``, the means (also of the shape change) in
    ``<name>_ntk_drift_<key>.csv``.

    The panel rows: the network's change and the centred network's (log y,
    shared), then, where the runs split them, the signed change of each one's
    scale (symmetric-log y, linear within 0.01, shared): ``a`` in
    ``Theta_t - Theta_0 = a Theta_0 + E``
    (:func:`ntkexp.ntk_drift.scale_and_shape_change`).

    Against the ResNet's ``alpha`` (``x_l = x_{l-1} + alpha V_l act(W_l
    x_{l-1})``): at ``alpha = 0`` the ResNet is the two-layer linear net
    ``v^T V_0 x``, the floor the residual branches add to. Against the
    centring ``c``: training ``f - c f_0`` on ``y`` starts from the residual
    ``(1 - c) f_0 - y``, so the scale change shows what undoing ``f_0`` and
    fitting ``y`` each do to the kernel (``results/resnet-ntk-alpha/``);
    ``losses``: the rows
    :func:`ntkexp.plots.drift_tables.centering_fit` reads ``f_0``'s size from
    (default ``rows``); its fits go to
    ``<name>_ntk_scale_centering_terms.csv`` (statistics over seeds) and
    ``<name>_ntk_scale_centering_seeds.csv`` (each seed's).
    """
    stats = drift_against(rows, key)
    if stats.empty:
        return []
    panels = [c for c in stats.columns if c not in (
        'metric', 'width', key, 'mean', 'std', 'seeds')]
    present = set(stats['metric'])
    drifts = [m for m in DRIFTS if m in present]
    scales = [m for m in DRIFT_PARTS if m.startswith('ntk_scale') and m in present]
    metrics = drifts + scales
    columns = list(stats.groupby(panels, dropna=False).groups)
    plt = figures.pyplot()
    fig, axes = plt.subplots(len(metrics), len(columns), squeeze=False,
                             sharex=True, figsize=(1.0 + 3.6 * len(columns),
                                                   0.6 + 2.9 * len(metrics)))
    for i, metric in enumerate(metrics):  # y shared within drifts, scales
        anchor = axes[0 if metric in DRIFTS else len(drifts), 0]
        for ax in axes[i]:
            if ax is not anchor:
                ax.sharey(anchor)
    widths = sorted(stats['width'].unique())
    colours = {w: f'C{i % 10}' for i, w in enumerate(widths)}
    for i, metric in enumerate(metrics):
        parts = {line_key(k): part for k, part in
                 stats[stats['metric'] == metric].groupby(panels, dropna=False)}
        drift = DRIFT_PARTS.get(metric, metric)
        for j, column in enumerate(columns):
            ax = axes[i, j]
            part = parts.get(line_key(column), stats.iloc[:0])
            for width, line in part.groupby('width'):
                line = line.sort_values(key)
                ax.errorbar(line[key], line['mean'],
                            yerr=line['std'].fillna(0), fmt='o-', ms=3,
                            capsize=2, color=colours[width],
                            label=f'n={figures.value_text(width)}')
            if metric in DRIFTS:
                ax.set_yscale('log')
            else:  # signed: linear within +-0.01, logarithmic beyond
                ax.set_yscale('symlog', linthresh=0.01)
                ax.axhline(0.0, color='gray', lw=0.8)
            what = DRIFTS[drift][1] or 'network '
            ax.set_title(what + _model_label(stats, column, panels), fontsize=9)
            if i == len(metrics) - 1:
                ax.set_xlabel(DRIFT_SWEEPS[key])
            if j == 0:
                ax.set_ylabel(r'$\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$'
                              if metric in DRIFTS else
                              r'scale change $a$: $\Theta_t - \Theta_0 = a \Theta_0 + E$')
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc='upper left',
               bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(f'relative change of the empirical NTK against {key}')
    fig.tight_layout()
    table = out_dir / f'{name}_ntk_drift_{key}.csv'
    paths = _save(fig, out_dir, f'{name}_ntk_drift_{key}')
    stats.to_csv(table, index=False)
    paths.append(table)
    if key == 'center_scale':
        seeds = drift_tables.centering_fit(rows, losses, per_seed=True)
        if not seeds.empty:
            for table, what in ((drift_tables.summarise_seed_fits(seeds), 'terms'),
                                (seeds, 'seeds')):
                paths.append(out_dir / f'{name}_ntk_scale_centering_{what}.csv')
                table.to_csv(paths[-1], index=False)
    return paths


def plot_ntk_layers(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Where the NTK's change comes from, leaf by leaf (``experiment.ntk_layers``),
    each line at its widest width: top, each parameter leaf's share of ``Theta_0``;
    below, its part of the kernel's scale change ``a`` after training, for
    the network and the centred network; one column per line. Means over
    seeds; all widths in ``<name>_ntk_layers.csv``, and summed over the
    input layer, hidden layers (or residual branches) and readout in
    ``<name>_ntk_layer_groups.csv``
    (:func:`ntkexp.plots.drift_tables.ntk_layer_group_table`). Runs
    that swept the centring are drawn at ``c = 1``
    (:func:`plot_ntk_layer_centering` draws the sweep)."""
    rows = drift_tables.layer_rows(_plain(frame))
    stats = drift_tables.leaf_stats(rows)
    if stats.empty:
        return []
    columns = line_columns(stats)
    widest = _at_widest(stats, columns)
    lines = list(widest.groupby(columns, dropna=False))
    plt = figures.pyplot()
    fig, axes = plt.subplots(2, len(lines), squeeze=False, sharex='col',
                             figsize=(1.0 + 3.8 * len(lines), 5.6))
    for j, (key, part) in enumerate(lines):
        share = part[part['metric'] == 'ntk_layer_share'].sort_values('layer')
        axes[0, j].bar(share['layer'], share['mean'], color='0.6')
        axes[0, j].set_title(_width_label(widest, key, columns, part), fontsize=9)
        ax = axes[1, j]
        for metric, (label, style) in drift_tables.LAYER_METRICS.items():
            line = part[part['metric'] == metric].sort_values('layer')
            if not line.empty:
                ax.errorbar(line['layer'], line['mean'],
                            yerr=line['std'].fillna(0), fmt=style, ms=3,
                            capsize=2, label=label)
        ax.axhline(0.0, color='gray', lw=0.8)
        ax.set_xticks(share['layer'])
        ax.set_xticklabels(share['layer_shape'], rotation=90, fontsize=7)
        ax.set_xlabel('parameter leaf')
        if j == 0:
            axes[0, j].set_ylabel(r'share of $\Theta_0$')
            ax.set_ylabel(r'its part of the scale change $a$')
            ax.legend(fontsize=7)
    fig.suptitle('the empirical NTK by parameter leaf, each net at its widest width')
    fig.tight_layout()
    table = out_dir / f'{name}_ntk_layers.csv'
    groups = out_dir / f'{name}_ntk_layer_groups.csv'
    paths = _save(fig, out_dir, f'{name}_ntk_layers')
    stats.to_csv(table, index=False)
    drift_tables.group_stats(rows).to_csv(groups, index=False)
    return paths + [table, groups]


def _at_widest(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of ``table`` at each line's (``columns``) widest width."""
    widest = table.groupby(columns, dropna=False)['width'].transform('max')
    return table[table['width'] == widest]


def _width_label(table: pd.DataFrame, key, columns: list[str],
                 part: pd.DataFrame) -> str:
    """:func:`_model_label` of a line and the width of its rows ``part``."""
    return (f'{_model_label(table, key, columns)}, '
            f'n={figures.value_text(part["width"].iloc[0])}')


#: :class:`ntkexp.ntk_drift.CenteringTerms` drawn by
#: :func:`plot_ntk_layer_centering` -> legend label and colour.
CENTERING_TERMS = {'from_y': (r'from_y: fit $y$ ($c = 1$)', 'tab:blue'),
                   'from_f0': (r'from_f0: undo $f_0$, first order', 'tab:red'),
                   'from_f0_squared': (r'from_f0_squared: second order', 'tab:orange')}


def plot_ntk_layer_centering(frame: pd.DataFrame, out_dir: Path,
                             name: str) -> list[Path]:
    """Where fitting ``y`` and undoing ``f_0`` each change the NTK: with
    ``experiment.ntk_layers`` runs at 3 or more centrings, the terms of
    :func:`ntkexp.plots.drift_tables.layer_centering_fit` per part of the net
    (input layer, hidden layers or residual branches, readout, all) at each line's widest width,
    one panel per line; bars: mean over seeds (std as error bars); black dots:
    their sum, the plain net's part (``c = 0``). Writes
    ``<name>_ntk_layer_groups_centering.png`` and, every width,
    ``<name>_ntk_layer_groups_centering_terms.csv`` (each seed's fit in
    ``..._centering_seeds.csv``) and per leaf
    ``<name>_ntk_layers_centering_terms.csv``."""
    leaf_seeds, group_seeds = drift_tables.layer_centering_fit(_plain(frame),
                                                               per_seed=True)
    if group_seeds.empty:
        return []
    leaves = drift_tables.summarise_seed_fits(leaf_seeds)
    groups = drift_tables.in_group_order(drift_tables.summarise_seed_fits(group_seeds))
    columns = [c for c in groups.columns[:groups.columns.get_loc('width')]]
    widest = _at_widest(groups, columns)
    lines = list(widest.groupby(columns, dropna=False, sort=False))
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(lines), squeeze=False, sharey=True,
                             figsize=(1.0 + 3.6 * len(lines), 3.8))
    width = 0.8 / len(CENTERING_TERMS)
    for ax, (key, part) in zip(axes[0], lines):
        x = np.arange(len(part))
        for k, (term, (label, colour)) in enumerate(CENTERING_TERMS.items()):
            ax.bar(x + (k - (len(CENTERING_TERMS) - 1) / 2) * width, part[term], width,
                   yerr=part[f'{term}_std'].fillna(0), capsize=2,
                   color=colour, label=label)
        plain = part[list(CENTERING_TERMS)].sum(axis=1)
        ax.plot(x, plain, 'ko', ms=4, label='sum: the net ($c = 0$)')
        ax.axhline(0.0, color='gray', lw=0.8)
        ax.set_xticks(x)
        ax.set_xticklabels(part['group'])
        ax.set_title(_width_label(widest, key, columns, part), fontsize=9)
    axes[0, 0].set_ylabel(r'part of the scale change $a(c)$')
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(r'$a(c)$ = from_y + from_f0 $(1 - c)$ + from_f0_squared '
                 '$(1 - c)^2$ by part of the net, each at its widest width')
    fig.tight_layout()
    paths = _save(fig, out_dir, f'{name}_ntk_layer_groups_centering')
    for table, what in ((groups, 'layer_groups_centering_terms'),
                        (group_seeds, 'layer_groups_centering_seeds'),
                        (leaves, 'layers_centering_terms')):
        paths.append(out_dir / f'{name}_ntk_{what}.csv')
        table.to_csv(paths[-1], index=False)
    return paths


#: The residuals of ``plot_nth``, with their legend labels.
NTH_RESIDUALS = {
    'nth_residual': r'NTH to $K^{(3)}$, linearised path',
    'nth2_residual': r'NTH to $K^{(4)}$, second-order path',
    'taylor1_residual': r'$D\Theta[\delta]$',
    'taylor2_residual': r'$D\Theta[\delta] + D^2\Theta[\delta,\delta]/2$'}


def nth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and median over seeds of the ``nth`` rows, per line, width
    and step (the residuals' spread over seeds is wide and skewed: a few
    seeds far above the rest move the mean, not the median)."""
    metrics = list(NTH_RESIDUALS) + ['nth_drift', 'nth2_drift', 'nth_cosine',
                                     'ntk_drift']
    rows = frame[frame['metric'].isin(metrics) & (frame['step'] > 0)]
    keys = line_columns(rows) + ['width', 'step', 'metric']
    table = rows.groupby(keys, dropna=False)['value'].agg(
        ['mean', 'std', 'median', 'count']).reset_index()
    return table


def plot_nth(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """The NTK's change against the hierarchy's prediction, vs width.

    One column per line (model, activation, ...): on top the residual of each
    prediction at the last step, below the actual change and the hierarchy's
    ``K^(3)`` term; log-log, mean +- std over seeds, fitted slopes.
    """
    frame = _plain(frame)
    if _metric(frame, 'taylor2_residual').empty:
        return []
    last = last_step(frame[frame['metric'].isin(
        list(NTH_RESIDUALS) + ['nth_drift', 'nth2_drift', 'ntk_drift'])
        & (frame['step'] > 0)])
    if last['width'].nunique() < 2:
        return []
    columns = line_columns(last)
    groups = list(last.groupby(columns, dropna=False))
    plt = figures.pyplot()
    fig, axes = plt.subplots(2, len(groups), figsize=(4.6 * len(groups), 7),
                             squeeze=False, sharex=True)
    fits = []
    drift_labels = {'ntk_drift': 'actual', 'nth_drift': r'NTH $K^{(3)}$ term',
                    'nth2_drift': r'NTH to $K^{(4)}$'}
    for (key, rows), top, bottom in zip(groups, axes[0], axes[1]):
        # The slopes CSV names the whole line (e.g. the activation too).
        line = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        for metric, style in zip(list(NTH_RESIDUALS) + list(drift_labels),
                                 ('o--C0', 'D-C3', 's:C1', 'o-C2', 'o-k',
                                  'o--C0', 'D-C3')):
            ax = bottom if metric in drift_labels else top
            label = NTH_RESIDUALS.get(metric, drift_labels.get(metric))
            for fit in loglog_by_model(ax, _metric(rows, metric), f'{label}; ',
                                       style):
                fits.append({'metric': metric, **line, **fit})
        top.set_title(_model_label(last, key, columns), fontsize=9)
        top.legend(fontsize=6, framealpha=0.6)
        bottom.legend(fontsize=6, framealpha=0.6)
        bottom.set_xlabel('width $n$')
    # The axes share x: ticks at every width of any line (lines may stop
    # at different widths).
    widths = sorted(last['width'].unique())
    for bottom in axes[1]:
        bottom.set_xticks(widths, [f'{w:g}' for w in widths])
        bottom.set_xticks([], minor=True)
    axes[0][0].set_ylabel(r'residual $\|\Theta_t-\Theta_0-P\|_F\,/\,'
                          r'\|\Theta_t-\Theta_0\|_F$')
    axes[1][0].set_ylabel(r'$\|\cdot\|_F / \|\Theta_0\|_F$ after '
                          f'{last["step"].max():g} steps')
    fig.tight_layout()
    paths = _save_with_slopes(fig, out_dir, f'{name}_nth', fits)
    table = out_dir / f'{name}_nth.csv'
    nth_table(frame).to_csv(table, index=False, float_format='%.6g')
    return paths + [table]


def plot_distance(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Distance to the NTK dynamics and to the linearised net vs width."""
    frame = _plain(frame)
    present = [m for m in ('dist_ntk', 'dist_linearized')
               if not _metric(frame, m).empty]
    if not present:
        return []
    rows = frame[frame['metric'].isin(present)]
    if 'split' in rows.columns:
        rows = rows[rows['split'] == 'test']
    rows = last_step(rows)
    # Not the distance to a predictor that diverged, nor from a network that
    # did: those points measure the blow-up (and would set the slopes).
    def compared(metric):
        return ('net', _DISTANCE_REFERENCE[metric])

    diverged = _diverged(frame)
    rows, dropped = _split_diverged(rows, diverged, compared)
    # A trend needs two widths of one architecture (e.g. lee2020_finite trains
    # FC at 512 and CNN-VEC at 16 channels: no distance-vs-width figure).
    if rows.empty or rows.groupby(line_columns(rows), dropna=False)[
            'width'].nunique().max() < 2:
        return []
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    styles = {'dist_ntk': 'o-', 'dist_linearized': 's--'}
    labels = {'dist_ntk': 'to NTK dynamics: ', 'dist_linearized': 'to linearised: '}
    fits = []
    for metric in present:
        for fit in loglog_by_model(ax, rows[rows['metric'] == metric],
                                    labels[metric], styles[metric]):
            fits.append(dict(metric=metric, **fit))
    ax.set_xlabel('width $n$')
    last = rows['step'].max() if 'step' in rows.columns else None
    ax.set_ylabel(r'RMS $|f_t(x) - f^{\mathrm{ref}}_t(x)|$ on the test set'
                  + (f' (step {last:g})' if last is not None else ''))
    ax.set_title('finite network vs ' + ' and '.join(
        {'dist_ntk': 'its NTK dynamics', 'dist_linearized': 'its linearisation'}[m]
        for m in present))
    _note_diverged(ax, dropped, diverged, compared)
    ax.legend(fontsize=7)
    return _save_with_slopes(fig, out_dir, f'{name}_distance', fits)


def plot_curves(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Test loss along training per width, network and references."""
    frame = _plain(frame)
    rows = _metric(frame, 'test_loss')
    if rows.empty or 'step' not in rows.columns or rows['step'].nunique() < 2:
        return []
    plt = figures.pyplot()
    widths = sorted(rows['width'].dropna().unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(4 * len(widths), 3.4),
                             squeeze=False, sharey=True)
    lines = line_columns(rows)
    # Time t = lr * steps when every line shares the lr, else steps (the
    # standard parameterisation's lr is width-dependent and tiny).
    xcol = 't' if 't' in rows.columns and (
        rows.groupby('step')['t'].nunique().max() <= 1) else 'step'
    diverged = _diverged(frame)
    for ax, width in zip(axes[0], widths):
        part = rows[rows['width'] == width]
        for key, group in part.groupby(lines + ['predictor'], dropna=False):
            predictor = key[-1]
            stats = group.groupby(xcol)['value'].mean().sort_index()
            label = (_model_label(rows, key[:-1]) + ', ' +
                     PREDICTOR_LABELS.get(predictor, predictor))
            line, = ax.plot(stats.index, stats.values,
                            PREDICTOR_STYLE.get(predictor, '-'), label=label)
            if not _split_diverged(group, diverged,
                                   lambda _, p=predictor: (p,))[1].empty:
                ax.annotate('diverged', (stats.index[-1], stats.values[-1]),
                            fontsize=7, ha='right', va='bottom',
                            color=line.get_color())
        names = sorted({MODEL_LABELS.get(str(m), str(m)) for m in part['model']})
        ax.set_title(', '.join(names) + f', width $n={int(width)}$')
        ax.set_xlabel('time $t$ = learning rate x steps' if xcol == 't'
                      else 'GD steps')
        ax.set_yscale('log')
    axes[0][0].set_ylabel('test loss')
    models = [frozenset(rows.loc[rows['width'] == w, 'model']) for w in widths]
    if len(set(models)) > 1:  # e.g. FC at 512 and CNN-VEC at 16: one legend each
        for ax in axes[0]:
            ax.legend(fontsize=6, loc='upper center', bbox_to_anchor=(0.5, -0.2))
    else:
        axes[0][-1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.02, 1))
    return _save(fig, out_dir, f'{name}_curves')


#: Predictors of the finite-vs-kernel bars: tick label, hatch, CSV name.
_BAR_PREDICTORS = {
    'net': ('net', '', 'net'),
    'net_centered': ('centred', '//', 'net, centred f_t - f_0'),
    'ntk': ('NTK dyn.', '..', 'NTK dynamics, same f_0'),
    'ntk_mean': ('NTK dyn.\n$f_0=0$', 'xx', 'NTK dynamics, f_0 = 0'),
    'net_ensemble': ('ens.', '\\\\', 'ensemble of nets'),
    'net_centered_ensemble': ('centred\nens.', 'oo', 'ensemble of centred nets'),
}


def _l2_settings(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each row's ``experiment.l2`` and ``l2_center``, with the config
    defaults (0, ``zero``) where a run did not set them."""
    l2 = pd.to_numeric(rows['l2'], errors='coerce').fillna(0.0)
    center = (rows['l2_center'] if 'l2_center' in rows.columns
              else pd.Series('zero', index=rows.index)).fillna('zero')
    return l2, center


def _with_l2_label(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with an ``l2_label`` column (``L2 0.01 to init``, ``no L2``)
    when runs with different ``experiment.l2`` settings are drawn together."""
    if 'l2' not in rows.columns:
        return rows
    l2, center = _l2_settings(rows)
    labels = [('no L2' if value == 0 else
               f"L2 {value:g}{' to init' if where == 'init' else ''}")
              for value, where in zip(l2, center)]
    if len(set(labels)) < 2:
        return rows
    # Sorted by centre, then strength (no L2 first).
    order = [(0, 0.0) if value == 0 else (1 + (where == 'init'), value)
             for value, where in zip(l2, center)]
    return rows.assign(l2_label=labels, l2_order=order)


def _largest_ensembles(frame: pd.DataFrame) -> pd.DataFrame:
    """``ensemble_test_accuracy`` rows of each run's largest ensemble, as
    predictors ``net_ensemble`` / ``net_centered_ensemble`` (Lee et al. 2020,
    Fig. 1's "+Ens" bars)."""
    ens = _metric(frame, 'ensemble_test_accuracy')
    if ens.empty or 'ensemble_size' not in ens.columns:
        return ens.iloc[:0]
    keys = [c for c in ('run_dir', 'model', 'parameterization', 'width')
            if c in ens.columns]
    top = ens.groupby(keys, dropna=False)['ensemble_size'].transform('max')
    ens = ens[ens['ensemble_size'] == top].copy()
    ens['predictor'] = ens['predictor'].astype(str) + '_ensemble'
    return ens


def _depth_sweep(rows: pd.DataFrame) -> bool:
    """Whether one model's rows hold several depths (a depth study)."""
    return ('depth' in rows.columns and 'model' in rows.columns
            and bool((rows.groupby('model')['depth'].nunique() > 1).any()))


def plot_finite_vs_kernel(frame: pd.DataFrame, out_dir: Path,
                          name: str) -> list[Path]:
    """Lee et al. 2020, Fig. 1: best finite-net accuracy vs kernel accuracy.

    Also writes ``<experiment>_finite_vs_kernel.csv``: per model,
    parameterisation and width the best test accuracy over training (mean
    over seeds) and the final one, and the NNGP / NTK accuracies.
    """
    frame = _plain(frame)
    kernel = _metric(frame, 'kernel_test_accuracy')
    net = _metric(frame, 'test_accuracy')
    if kernel.empty or net.empty or _depth_sweep(net):
        return []  # a depth sweep: plot_depth_accuracy (one bar per depth would not fit)
    net = pd.concat([net, _largest_ensembles(frame)], ignore_index=True)
    net = net[net['predictor'].isin(list(_BAR_PREDICTORS))]
    net = _with_l2_label(net)
    keys = [c for c in ('model', 'parameterization', 'width', 'predictor',
                        'ensemble_size', 'l2_label', 'l2_order')
            if c in net.columns]
    per_seed = net.groupby(keys + ['seed'], dropna=False)
    best = (per_seed['value'].max().groupby(keys, dropna=False)
            .agg(['mean', 'std']).reset_index())
    final = (last_step(net).groupby(keys, dropna=False)['value'].mean()
             .rename('final').reset_index())
    best = best.merge(final, on=keys, how='left')
    kkeys = [c for c in ('model', 'parameterization', 'kernel')
             if c in kernel.columns]
    kstats = kernel.groupby(kkeys, dropna=False)['value'].mean().reset_index()
    plt = figures.pyplot()
    models = sorted(best['model'].unique())
    n_bars = len(best) + 2 * len(models)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.8 * n_bars), 4))
    labels, values, errors, colors, hatches = [], [], [], [], []
    table = []
    for model in models:
        mb = best[best['model'] == model]
        mb = mb.assign(_order=mb['predictor'].map(
            {p: i for i, p in enumerate(_BAR_PREDICTORS)}))
        order = [c for c in ('parameterization', '_order', 'l2_order')
                 if c in mb.columns]
        for _, r in mb.sort_values(order).iterrows():
            par = r.get('parameterization', '')
            predictor = r.get('predictor', 'net')
            short, hatch, long = _BAR_PREDICTORS[predictor]
            size = r.get('ensemble_size', np.nan)
            if pd.notna(size):
                short, long = f'{short}\nK={int(size)}', f'{long} (K={int(size)})'
            if r.get('l2_label'):
                short = f"{short}\n" + r['l2_label'].replace(' to init', '\nto init')
                long = f"{long}, {r['l2_label']}"
            labels.append(f"{MODEL_LABELS.get(model, model)}\n{par}\n"
                          f"n={int(r['width'])}\n{short}")
            values.append(r['mean'])
            errors.append(np.nan if pd.isna(r['std']) else r['std'])
            colors.append('tab:blue' if par == 'ntk' else 'tab:orange')
            hatches.append(hatch)
            table.append(dict(model=model, predictor=f'{long} ({par} param.)',
                              width=int(r['width']), best_accuracy=r['mean'],
                              final_accuracy=r['final']))
        mk = kstats[kstats['model'] == model]
        for kern in ('nngp', 'ntk'):
            part = mk[mk['kernel'] == kern] if 'kernel' in mk.columns else mk
            if part.empty:
                continue
            if 'parameterization' in part.columns:
                part = part[part['parameterization'] == 'ntk'] if (
                    part['parameterization'] == 'ntk').any() else part
            labels.append(f'{MODEL_LABELS.get(model, model)}\n{kern.upper()}\n'
                          r'$t=\infty$')
            values.append(part['value'].mean())
            errors.append(np.nan)
            colors.append('tab:green' if kern == 'nngp' else 'tab:red')
            hatches.append('')
            table.append(dict(model=model, predictor=kern.upper(),
                              width=None, best_accuracy=None,
                              final_accuracy=part['value'].mean()))
    x = np.arange(len(values))
    # Error bars (std over seeds) only where there are several seeds.
    ax.bar(x, values, yerr=None if np.all(np.isnan(errors)) else errors,
           color=colors, capsize=3, hatch=hatches)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel('test accuracy')
    # From 0, so that bar lengths compare; guessing marked where known.
    ax.set_ylim(0.0, min(1.0, np.nanmax(values) + 0.05))
    datasets = set(frame['dataset'].dropna()) if 'dataset' in frame else set()
    if len(datasets) == 1 and next(iter(datasets)) in CHANCE:
        chance = CHANCE[next(iter(datasets))]
        ax.axhline(chance, color='k', lw=0.8, ls='--')
        ax.annotate('chance', (x[-1] + 0.4, chance), fontsize=7, va='bottom',
                    ha='right')
    ax.set_title('best test accuracy over training: finite nets and their NTK '
                 'dynamics (blue NTK, orange standard param.)\nvs NNGP (green) / '
                 'NTK (red) kernel regression at $t = \\infty$', fontsize=8)
    paths = _save(fig, out_dir, f'{name}_finite_vs_kernel')
    path = out_dir / f'{name}_finite_vs_kernel.csv'
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]


def plot_ensemble(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Lee et al. 2020, Sec. 3.3: ensembles of networks against their size.

    Left: the ensemble's test accuracy (or test loss without labels) at the
    last step against the ensemble size ``K``, one line per model, width and
    predictor (network solid, centred network dashed), with the NTK dynamics
    from ``f_0 = 0`` at the same step (dash-dotted; the infinite ensemble at
    infinite width) and NNGP / NTK kernel regression at ``t = inf`` (dotted)
    when the rows have them. Right: the ensemble's RMS distance on the test
    set to those dynamics against ``K``, log-log, with the ``1/sqrt(K)`` line
    of averaging independent initial functions through ``K = 1``.
    """
    frame = _plain(frame)
    metric = ('ensemble_test_accuracy'
              if not _metric(frame, 'ensemble_test_accuracy').empty
              else 'ensemble_test_loss')
    rows = last_step(_metric(frame, metric))
    if rows.empty or 'ensemble_size' not in rows.columns:
        return []
    plain = metric.replace('ensemble_', '')
    dist = last_step(_metric(frame, 'ensemble_dist_ntk_mean'))
    if 'split' in dist.columns:
        dist = dist[dist['split'] == 'test']
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 2 if not dist.empty else 1,
                             figsize=(10 if not dist.empty else 5.5, 4.8),
                             squeeze=False)
    ax = axes[0][0]
    lines = line_columns(rows) + ['width']
    table = []
    colors = {}
    for key, group in rows.groupby(lines + ['predictor'], dropna=False):
        predictor = key[-1]
        stats = group.groupby('ensemble_size')['value'].mean().sort_index()
        label = (_model_label(rows, key[:-2]) + f', n={int(key[-2])}, ' +
                 PREDICTOR_LABELS.get(predictor, predictor))
        color = colors.setdefault(key[:-1], f'C{len(colors)}')
        ax.plot(stats.index, stats.values, '--' if predictor == 'net_centered'
                else '-', marker='o', ms=3, color=color, label=label)
        for size, value in stats.items():
            table.append(dict(_key_dict(lines, key[:-1]), predictor=predictor,
                              ensemble_size=int(size), metric=plain,
                              value=value))
    # The infinite ensemble at infinite width: the NTK dynamics from f_0 = 0
    # at the same step (its rows are per seed, all equal at one lr).
    # One line when every model and width shares it (NTK parameterisation:
    # the dynamics do not depend on the width), else one per line's colour.
    limit = last_step(_metric(frame, plain))
    limit = (limit[limit['predictor'] == 'ntk_mean']
             if 'predictor' in limit.columns else limit.iloc[:0])
    if not limit.empty:
        keys = [c for c in lines if c in limit.columns]
        values = limit.groupby(keys, dropna=False)['value'].mean()
        label = PREDICTOR_LABELS['ntk_mean'] + ' (same $t$)'
        if np.ptp(values.to_numpy()) <= 1e-9 * max(1.0, abs(values.iloc[0])):
            ax.axhline(values.iloc[0], color='k', ls='-.', lw=1, label=label)
            table.append(dict(predictor='ntk_mean', metric=plain,
                              value=values.iloc[0]))
        else:
            for key, value in values.items():
                key = key if isinstance(key, tuple) else (key,)
                ax.axhline(value, color=colors.get(key, 'k'), ls='-.', lw=1,
                           label=label)
                label = None
                table.append(dict(_key_dict(keys, key), predictor='ntk_mean',
                                  metric=plain, value=value))
    for kern, value in _kernel_lines([ax], _metric(frame, 'kernel_' + plain),
                                     style=':').items():
        table.append(dict(predictor=kern, metric='kernel_' + plain, value=value))
    _ensemble_axis(ax, rows)
    ax.set_xlabel('ensemble size $K$ (networks from independent inits)')
    ax.set_ylabel(plain.replace('_', ' ') + ' of the mean output')
    steps = sorted(rows['step'].dropna().unique()) if 'step' in rows else []
    ax.set_title('ensembles at the last step' + (
        f' ({int(steps[0])})' if len(steps) == 1 else ''), fontsize=9)
    ax.legend(fontsize=6, loc='upper left', bbox_to_anchor=(0.0, -0.16),
              ncol=2)
    if not dist.empty:
        ax = axes[0][1]
        for key, group in dist.groupby(lines + ['predictor'], dropna=False):
            predictor = key[-1]
            stats = group.groupby('ensemble_size')['value'].mean().sort_index()
            color = colors.setdefault(key[:-1], f'C{len(colors)}')
            ax.plot(stats.index, stats.values, '--' if predictor == 'net_centered'
                    else '-', marker='o', ms=3, color=color)
            if 1 in stats.index:
                ax.plot(stats.index, stats.loc[1] / np.sqrt(stats.index), ':',
                        color=color, lw=0.8)
            for size, value in stats.items():
                table.append(dict(_key_dict(lines, key[:-1]),
                                  predictor=predictor, ensemble_size=int(size),
                                  metric='dist_ntk_mean', value=value))
        _ensemble_axis(ax, dist)
        ax.set_yscale('log')
        ax.set_xlabel('ensemble size $K$')
        ax.set_ylabel('RMS distance to NTK dynamics from $f_0=0$ (test)')
        ax.set_title('dotted: $1/\\sqrt{K}$ from $K=1$', fontsize=9)
    fig.tight_layout()
    paths = _save(fig, out_dir, f'{name}_ensemble')
    path = out_dir / f'{name}_ensemble.csv'
    table = pd.DataFrame(table)
    for column in ('width', 'ensemble_size'):  # integers beside empty cells
        if column in table.columns:
            table[column] = table[column].astype('Int64')
    table.to_csv(path, index=False)
    return paths + [path]


def _key_dict(columns: list[str], key: tuple) -> dict:
    """A line's key as ``{column: value}``, widths as integers."""
    out = dict(zip(columns, key))
    if 'width' in out and pd.notna(out['width']):
        out['width'] = int(out['width'])
    return out


def _ensemble_axis(ax, rows: pd.DataFrame) -> None:
    """Log2 x axis ticked at the ensemble sizes themselves (1, 2, 4, ...)."""
    sizes = sorted(int(k) for k in rows['ensemble_size'].dropna().unique())
    ax.set_xscale('log', base=2)
    ax.set_xticks(sizes, [str(k) for k in sizes])
    ax.minorticks_off()


def plot_l2(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Lee et al. 2020, Sec. 3: test accuracy against the L2 strength.

    Left against ``l2`` (symmetric-log axis: ``0`` is no L2), right against
    the decay exponent ``l2 * t`` at the last step; best accuracy over
    training (mean +- std over seeds) solid, final accuracy dotted; NNGP /
    NTK kernel regression at ``t = inf`` as horizontal lines.
    """
    frame = _plain(frame)
    rows = _metric(frame, 'test_accuracy')
    if rows.empty or 'l2' not in rows.columns:
        return []
    rows = rows[rows['predictor'].isin(['net', 'net_centered'])]
    l2, center = _l2_settings(rows)
    if l2.nunique() < 3:
        return []
    rows = rows.assign(l2=l2, **({'l2_center': center}
                                 if 'l2_center' in rows.columns else {}))
    lines = [c for c in ('model', 'parameterization', 'l2_center', 'predictor')
             if c in rows.columns and (c == 'model' or rows[c].nunique() > 1)]
    keys = lines + ['l2', 'run_dir', 'seed']
    runs = _best_and_final(rows, keys)
    runs['t'] = last_step(rows).groupby(keys, dropna=False)['t'].max()
    runs = runs.reset_index()
    runs['decay'] = runs['l2'] * runs['t']
    stats = runs.groupby(lines + ['l2'], dropna=False).agg(
        best=('best', 'mean'), best_std=('best', 'std'),
        final=('final', 'mean'), decay=('decay', 'mean'),
        seeds=('best', 'size')).reset_index()
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for i, (key, part) in enumerate(stats.groupby(lines, dropna=False)):
        part = part.sort_values('l2')
        key = key if isinstance(key, tuple) else (key,)
        label = ', '.join(
            MODEL_LABELS.get(str(v), str(v)) if c == 'model' else
            (f'{v} param.' if c == 'parameterization' else
             (f'L2 to {"init" if v == "init" else "0"}' if c == 'l2_center'
              else PREDICTOR_LABELS.get(v, v)))
            for c, v in zip(lines, key))
        color = f'C{i}'
        for ax, x in ((axes[0], part['l2']), (axes[1], part['decay'])):
            ax.errorbar(x, part['best'], yerr=part['best_std'].fillna(0),
                        fmt='o-', ms=4, capsize=2, color=color,
                        label=label if ax is axes[0] else None)
            ax.plot(x, part['final'], ':', color=color, lw=1)
    _kernel_lines(axes, _metric(frame, 'kernel_test_accuracy'))
    for ax, column in ((axes[0], 'l2'), (axes[1], 'decay')):
        _zero_and_decades_axis(ax, stats[column])
    axes[0].set_xlabel('L2 coefficient $\\lambda$ (0: none)')
    axes[1].set_xlabel(r'decay exponent $\lambda t$ ($t$ = lr $\times$ steps)')
    axes[0].set_ylabel('test accuracy (best over training; dotted: final)')
    datasets = set(frame['dataset'].dropna()) if 'dataset' in frame else set()
    if len(datasets) == 1 and next(iter(datasets)) in CHANCE:
        for ax in axes:
            ax.axhline(CHANCE[next(iter(datasets))], color='k', lw=0.8, ls=':')
    axes[0].legend(fontsize=7, loc='upper left', bbox_to_anchor=(0.0, -0.16), ncol=2)
    fig.suptitle('L2 regularisation of finite networks vs the kernels', fontsize=9)
    fig.tight_layout()
    paths = _save(fig, out_dir, f'{name}_l2')
    path = out_dir / f'{name}_l2.csv'
    stats.to_csv(path, index=False)
    return paths + [path]


def _kernel_lines(axes, kernel: pd.DataFrame, style: str = '--') -> dict[str, float]:
    """NNGP / NTK kernel regression at ``t = inf`` (``kernel_test_*`` rows)
    as horizontal lines on each of ``axes`` (labelled on the first); the NTK
    parameterisation's kernels when rows of both are given. Returns the
    values drawn, by kernel."""
    if 'parameterization' in kernel.columns and (
            kernel['parameterization'] == 'ntk').any():
        kernel = kernel[kernel['parameterization'] == 'ntk']
    drawn = {}
    for kern, color in (('nngp', 'tab:green'), ('ntk', 'tab:red')):
        part = (kernel[kernel['kernel'] == kern] if 'kernel' in kernel.columns
                else kernel.iloc[:0])
        if part.empty:
            continue
        drawn[kern] = float(part['value'].mean())
        for i, ax in enumerate(axes):
            ax.axhline(drawn[kern], color=color, ls=style, lw=1,
                       label=f'{kern.upper()} kernel, $t=\\infty$' if i == 0
                       else None)
    return drawn


def _zero_and_decades_axis(ax, values: pd.Series) -> None:
    """A symmetric-log x axis from 0 (linear up to the smallest positive
    value), ticked at 0 and at the powers of ten the values span."""
    positive = values[values > 0]
    if positive.empty:
        return
    low, high = float(positive.min()), float(positive.max())
    ax.set_xscale('symlog', linthresh=low)
    ax.set_xlim(-0.3 * low, high * 1.5)
    decades = 10.0 ** np.arange(np.floor(np.log10(low)),
                                np.ceil(np.log10(high)) + 1)
    ticks = [0.0] + [d for d in decades if low * 0.99 <= d <= high * 1.5]
    ax.set_xticks(ticks, ['0'] + [f'{d:g}' for d in ticks[1:]])
    ax.minorticks_off()


def plot_lr(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Large learning rates (Lee et al. 2020, Sec. 3; Lewkowycz et al. 2020).

    Against ``experiment.lr_fraction``: best / final test accuracy of the
    network (kernels at ``t = inf`` as lines), the NTK drift at the last step
    and the training loss peak over its step-0 value, one line per model and
    parameterisation; per seed, a network whose training diverged (its
    ``diverged_at_step`` row) is left out and counted in the CSV.
    """
    frame = _plain(frame)
    if 'lr_fraction' not in frame.columns:
        return []
    frame = frame[frame['lr_fraction'].notna()].copy()
    frame['lr_fraction'] = pd.to_numeric(frame['lr_fraction'], errors='coerce')
    accuracy = _metric(frame, 'test_accuracy')
    accuracy = accuracy[accuracy['predictor'] == 'net']
    if frame['lr_fraction'].nunique() < 3 or accuracy.empty:
        return []
    lines = line_columns(frame, without=('lr_fraction',))
    keys = lines + ['lr_fraction', 'run_dir', 'width', 'seed']
    diverged = _metric(frame, 'diverged_at_step')
    diverged = diverged[diverged['predictor'] == 'net']
    bad = _diverged(frame)

    def per_seed(rows):
        """The rows of the runs and seeds whose network did not diverge."""
        return _split_diverged(rows, bad, lambda _: ('net',))[0]

    runs = _best_and_final(per_seed(accuracy), keys)
    drift = per_seed(last_step(_metric(frame, 'ntk_drift')))
    if not drift.empty:
        runs['ntk_drift'] = drift.groupby(keys, dropna=False)['value'].mean()
    dist = _metric(frame, 'dist_ntk')
    if 'split' in dist.columns:
        dist = dist[dist['split'] == 'test']
    dist = per_seed(last_step(dist))
    if not dist.empty:
        runs['dist_ntk'] = dist.groupby(keys, dropna=False)['value'].mean()
    loss = _metric(frame, 'train_loss')
    loss = per_seed(loss[loss['predictor'] == 'net'])
    if not loss.empty and loss['step'].nunique() >= 3:
        first = loss[loss['step'] == 0].groupby(keys, dropna=False)['value'].mean()
        runs['loss_peak'] = loss.groupby(keys, dropna=False)['value'].max() / first
    runs = runs.reset_index()
    stats = runs.groupby(lines + ['lr_fraction'], dropna=False).agg(
        **{c: (c, 'mean') for c in runs.columns if c in (
            'best', 'final', 'ntk_drift', 'dist_ntk', 'loss_peak')},
        best_std=('best', 'std'), seeds=('best', 'size')).reset_index()
    # Learning rates at which every seed diverged keep a row (seeds 0).
    counts = diverged.reindex(columns=lines + ['lr_fraction']).groupby(
        lines + ['lr_fraction'], dropna=False).size().rename('diverged').reset_index()
    stats = stats.merge(counts, on=lines + ['lr_fraction'], how='outer')
    stats['diverged'] = stats['diverged'].fillna(0).astype(int)
    stats['seeds'] = stats['seeds'].fillna(0).astype(int)
    stats = stats.sort_values(lines + ['lr_fraction']).reset_index(drop=True)
    panels = [c for c in ('best', 'dist_ntk', 'ntk_drift', 'loss_peak')
              if c in stats.columns]
    plt = figures.pyplot()
    columns = 2 if len(panels) == 4 else len(panels)
    fig, grid = plt.subplots(len(panels) // columns, columns,
                             figsize=(4.8 * columns, 3.8 * (len(panels) // columns)),
                             squeeze=False)
    axes = dict(zip(panels, grid.ravel()))
    for i, (key, part) in enumerate(stats.groupby(lines, dropna=False)):
        part = part[part['seeds'] > 0].sort_values('lr_fraction')
        label = _model_label(stats, key, lines)
        color = f'C{i}'
        ax = axes['best']
        ax.errorbar(part['lr_fraction'], part['best'],
                    yerr=part['best_std'].fillna(0), fmt='o-', ms=4, capsize=2,
                    color=color, label=label)
        ax.plot(part['lr_fraction'], part['final'], ':', color=color, lw=1)
        for column in ('dist_ntk', 'ntk_drift', 'loss_peak'):
            if column in axes:
                axes[column].plot(part['lr_fraction'], part[column], 'o-', ms=4,
                                  color=color)
    _kernel_lines([axes['best']], _metric(frame, 'kernel_test_accuracy'))
    titles = {'best': 'test accuracy (best over training; dotted: final)',
              'dist_ntk': 'RMS distance to the NTK dynamics, same $f_0$ (test, last step)',
              'ntk_drift': r'NTK change $\|\Theta_t-\Theta_0\|/\|\Theta_0\|$ (last step)',
              'loss_peak': 'peak train loss / step-0 loss'}
    for column, ax in axes.items():
        ax.set_xlabel(r'learning rate / $(2/\lambda_{max})$')
        ax.set_title(titles[column], fontsize=9)
        ax.axvline(1.0, color='gray', lw=0.8, ls=':')
        if column != 'best':
            ax.set_yscale('log')
    if 'loss_peak' in axes:
        axes['loss_peak'].axhline(1.0, color='gray', lw=0.8)
    gone = stats[stats['diverged'] > 0]
    if not gone.empty:
        text = '; '.join(f"{r['lr_fraction']:g}x: {r['diverged']} of "
                         f"{r['diverged'] + r['seeds']}"
                         for _, r in gone.iterrows())
        fig.text(0.5, 0.005, 'diverged, not drawn (learning rate / bound: '
                 'seeds): ' + text, fontsize=8, ha='center', va='bottom')
    axes['best'].legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    paths = _save(fig, out_dir, f'{name}_lr')
    path = out_dir / f'{name}_lr.csv'
    stats.to_csv(path, index=False)
    return paths + [path]


def _accuracy_lines(ax, stats: pd.DataFrame, x: str):
    """Draws each predictor's best test accuracy (``best`` +- ``best_std``) and
    its final one (dotted) against ``x``, in :data:`_BAR_PREDICTORS` order.

    Returns:
        ``(line, style)`` per predictor: its rows sorted by ``x`` and the
        colour / line style it was drawn with, for the caller's other panels.
    """
    order = list(_BAR_PREDICTORS)
    drawn = []
    for i, (predictor, line) in enumerate(sorted(
            stats.groupby('predictor'), key=lambda g: order.index(g[0])
            if g[0] in order else len(order))):
        line = line.sort_values(x)
        style = dict(color=f'C{i}', ls=PREDICTOR_STYLE.get(predictor, '-'))
        ax.errorbar(line[x], line['best'], yerr=line['best_std'].fillna(0),
                    fmt='o', ms=4, capsize=2,
                    label=PREDICTOR_LABELS.get(predictor, predictor), **style)
        ax.plot(line[x], line['final'], ':', color=style['color'], lw=1)
        drawn.append((line, style))
    return drawn


def plot_width_accuracy(frame: pd.DataFrame, out_dir: Path,
                        name: str) -> list[Path]:
    """Lee et al. 2020, Sec. 3: test accuracy and loss against the width.

    Per model and parameterisation (columns of panels) and predictor (lines):
    top, the best test accuracy over training (mean +- std over seeds) and
    the final one (dotted); bottom, the test loss at the last step (log
    scale); log-2 width axis; NNGP / NTK kernel regression at ``t = inf`` as
    horizontal lines. Diverged predictors are left out.
    """
    frame = _plain(frame)
    rows = frame[frame['metric'].isin(['test_accuracy', 'test_loss'])]
    if (_metric(rows, 'test_accuracy').empty or 'width' not in rows.columns
            or rows['width'].nunique() < 3):
        return []
    rows = _converged(rows, _diverged(frame))
    panels = [c for c in ('model', 'parameterization') if c in rows.columns]
    keys = panels + ['predictor', 'width']
    seed_keys = keys + ['run_dir', 'seed']
    runs = _best_and_final(_metric(rows, 'test_accuracy'), seed_keys)
    loss = last_step(_metric(rows, 'test_loss'))
    if not loss.empty:
        runs['test_loss'] = loss.groupby(seed_keys, dropna=False)['value'].mean()
    runs = runs.reset_index()
    stats = runs.groupby(keys, dropna=False).agg(
        best=('best', 'mean'), best_std=('best', 'std'), final=('final', 'mean'),
        seeds=('best', 'size'),
        **({'test_loss': ('test_loss', 'mean')} if 'test_loss' in runs else {})
    ).reset_index()
    groups = list(stats.groupby(panels, dropna=False))
    n_rows = 2 if 'test_loss' in stats.columns else 1
    plt = figures.pyplot()
    fig, axes = plt.subplots(n_rows, len(groups),
                             figsize=(5.2 * len(groups), 4.0 * n_rows),
                             squeeze=False, sharex='col')
    for column, (key, part) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        ax = axes[0][column]
        for line, style in _accuracy_lines(ax, part, 'width'):
            if n_rows == 2:
                axes[1][column].plot(line['width'], line['test_loss'], marker='o',
                                     ms=4, **style)
        for row, metric in enumerate(('kernel_test_accuracy',
                                      'kernel_test_loss')[:n_rows]):
            mk = _metric(frame, metric)
            for c, value in zip(panels, key):
                if c in mk.columns:
                    mk = mk[mk[c] == value]
            _kernel_lines([axes[row][column]], mk)
        widths = sorted(part['width'].unique())
        for row in range(n_rows):
            axes[row][column].set_xscale('log', base=2)
            axes[row][column].set_xticks(widths, [f'{int(w)}' for w in widths])
            axes[row][column].minorticks_off()
        axes[-1][column].set_xlabel('width $n$')
        ax.set_title(', '.join(MODEL_LABELS.get(str(v), str(v)) if c == 'model'
                               else f'{v} param.' for c, v in zip(panels, key)),
                     fontsize=9)
    axes[0][0].set_ylabel('test accuracy (best over training; dotted: final)')
    if n_rows == 2:
        axes[1][0].set_ylabel('test loss at the last step')
        for ax in axes[1]:
            ax.set_yscale('log')
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    paths = _save(fig, out_dir, f'{name}_width_accuracy')
    path = out_dir / f'{name}_width_accuracy.csv'
    stats.to_csv(path, index=False)
    return paths + [path]


def plot_depth_accuracy(frame: pd.DataFrame, out_dir: Path,
                        name: str) -> list[Path]:
    """Huang et al. 2020 with finite nets: accuracy and NTK drift against the depth.

    Per model (columns of panels) at one width: top, each predictor's best
    test accuracy over training (mean +- std over seeds; dotted: the final
    one) and the NNGP / NTK kernel regression at ``t = inf`` of the same depth
    (dashed; shared axes across models); bottom, the relative change of the empirical NTK over training
    (``ntk_drift`` at the last step), log scale. Log-2 depth axis. Drawn when
    a run set sweeps at least three depths at one width. Diverged predictors
    are left out.
    """
    frame = _plain(frame)
    rows = frame[frame['metric'].isin(['test_accuracy'])]
    if (rows.empty or not _depth_sweep(rows) or rows['depth'].nunique() < 3
            or ('width' in rows.columns and rows['width'].nunique() > 1)):
        return []
    rows = _converged(rows, _diverged(frame))
    keys = ['model', 'predictor', 'depth']
    runs = _best_and_final(rows, keys + ['run_dir', 'seed']).reset_index()
    stats = runs.groupby(keys, dropna=False).agg(
        best=('best', 'mean'), best_std=('best', 'std'), final=('final', 'mean'),
        seeds=('best', 'size')).reset_index()
    drift = last_step(_metric(frame, 'ntk_drift'))
    drift = drift.groupby(['model', 'depth'])['value'].agg(['mean', 'std']).reset_index()
    positive = drift['mean'][drift['mean'] > 0]
    drift_ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
                   if not positive.empty and positive.min() / 3 <= t <= positive.max() * 3]
    kernel = _metric(frame, 'kernel_test_accuracy')
    if 'parameterization' in kernel.columns and (kernel['parameterization'] == 'ntk').any():
        kernel = kernel[kernel['parameterization'] == 'ntk']
    kernel = (kernel.groupby(['model', 'kernel', 'depth'])['value'].mean().reset_index()
              if not kernel.empty else kernel)
    models = [m for m in ('fc', 'resnet') if m in set(stats['model'])] + sorted(
        set(stats['model']) - {'fc', 'resnet'})
    plt = figures.pyplot()
    fig, axes = plt.subplots(2, len(models), figsize=(5.2 * len(models), 7.5),
                             squeeze=False, sharex='col', sharey='row')
    table = []
    for column, model in enumerate(models):
        ax, ax_drift = axes[0][column], axes[1][column]
        part = stats[stats['model'] == model]
        for line, _ in _accuracy_lines(ax, part, 'depth'):
            table += [dict(model=model, **r)
                      for r in line.drop(columns=['model']).to_dict('records')]
        if not kernel.empty:
            # Not the predictors' C0-C3: the kernels at t = inf stand apart.
            for kern, color in (('nngp', 'tab:purple'), ('ntk', 'tab:brown')):
                line = kernel[(kernel['model'] == model) & (kernel['kernel'] == kern)]
                if line.empty:
                    continue
                line = line.sort_values('depth')
                ax.plot(line['depth'], line['value'], '--', color=color, lw=1.2,
                        label=f'{kern.upper()} kernel, $t=\\infty$')
                table += [dict(model=model, predictor=f'{kern}_kernel', depth=d, final=v)
                          for d, v in zip(line['depth'], line['value'])]
        line = drift[drift['model'] == model].sort_values('depth')
        if not line.empty:
            ax_drift.errorbar(line['depth'], line['mean'], yerr=line['std'].fillna(0),
                              fmt='o-', ms=4, capsize=2, color='k')
            ax_drift.set_yscale('log')
            ax_drift.set_yticks(drift_ticks, [f'{t:g}' for t in drift_ticks])
            ax_drift.minorticks_off()
            table += [dict(model=model, predictor='ntk_drift', depth=d, final=v)
                      for d, v in zip(line['depth'], line['mean'])]
        depths = sorted(part['depth'].unique())
        for a in (ax, ax_drift):
            a.set_xscale('log', base=2)
            a.set_xticks(depths, [f'{int(d)}' for d in depths])
            a.minorticks_off()
        width = rows['width'].dropna().unique() if 'width' in rows.columns else []
        ax.set_title(MODEL_LABELS.get(str(model), str(model))
                     + (f', width {int(width[0])}' if len(width) else ''), fontsize=9)
        ax_drift.set_xlabel('depth $L$')
    axes[0][0].set_ylabel('test accuracy (best over training; dotted: final)')
    axes[1][0].set_ylabel(r'NTK change $\|\Theta_T - \Theta_0\|_F / \|\Theta_0\|_F$')
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    out_dir = Path(out_dir)
    paths = _save(fig, out_dir, f'{name}_depth_accuracy')
    path = out_dir / f'{name}_depth_accuracy.csv'
    pd.DataFrame(table).to_csv(path, index=False)
    return paths + [path]
