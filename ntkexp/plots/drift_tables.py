"""Tables of the empirical NTK's change over runs and seeds.

The numbers behind the centring and per-layer figures of
:mod:`ntkexp.plots.finite_width`, written beside them as CSVs
(``results/resnet-ntk-alpha/``):

* the centring fits (:func:`centering_fit`): the centred nets' scale change
  against the centring ``c`` as :func:`ntkexp.ntk_drift.centering_terms`'
  quadratic in ``1 - c``, seed by seed, then over seeds, with the share of
  the growth from fitting ``y`` that the plain net loses to undoing ``f_0``
  (:func:`ntkexp.ntk_drift.undone_share`), the initial output's size
  ``f0_over_y`` (:func:`initial_output_energy`) and the share per unit of
  it with its seed-bootstrap interval;
* the per-layer tables (``experiment.ntk_layers``): each parameter leaf's
  share of ``Theta_0`` and part of the kernel's scale change
  (:func:`ntk_layer_table`), summed over the input layer, hidden layers (or
  residual branches) and readout (:func:`ntk_layer_group_table`), and the
  centring fits part by part (:func:`layer_centering_fit`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats

from ntkexp import ntk_drift
from ntkexp.plots.rows import last_step, line_columns

#: The NTK changes at the last step that ``experiment.finite_width`` records
#: per run (the relative change of the network's and the centred network's
#: kernel, and their scale and shape parts:
#: :func:`ntkexp.ntk_drift.scale_and_shape_change`).
DRIFT_METRICS = ('ntk_drift', 'ntk_drift_centered',
                 'ntk_scale_change', 'ntk_scale_change_centered',
                 'ntk_shape_change', 'ntk_shape_change_centered')


def drift_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The last step's rows of every metric of :data:`DRIFT_METRICS`."""
    return last_step(frame[frame['metric'].isin(DRIFT_METRICS)])


def centering_fit(rows: pd.DataFrame, losses: pd.DataFrame | None = None,
                  per_seed: bool = False) -> pd.DataFrame:
    """The centred nets' scale change ``a(c)`` (``ntk_scale_change_centered``)
    against the centring ``c``, fitted per seed as
    :func:`ntkexp.ntk_drift.centering_terms` (``from_y + from_f0 (1 - c) +
    from_f0_squared (1 - c)**2``, second order in the displacement), then
    the mean and std over seeds per model, line and width; ``residual`` is
    the mean RMS residual, ``largest`` the mean ``max |a|`` it compares with;
    ``f0_over_y`` and ``undone_share_per_f0`` (with its seed-bootstrap
    interval) from the step-0 training losses in ``losses`` (default
    ``rows``; :func:`initial_output_energy`). With ``per_seed``, each seed's
    fit instead, the same columns without the statistics over seeds. Empty
    unless a model ran at 3 or more centrings."""
    if 'center_scale' not in rows.columns:
        return pd.DataFrame()
    losses = rows if losses is None else losses
    rows = drift_rows(rows)
    rows = rows[(rows['metric'] == 'ntk_scale_change_centered')
                & rows['center_scale'].notna()]
    if rows.empty:
        return pd.DataFrame()
    keys = line_columns(rows, without=('center_scale',)) + ['width']
    fit = _seed_fits_with_energy if per_seed else _fit_centerings
    return fit(rows, keys, initial_output_energy(losses, keys))


def initial_output_energy(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``||f_0||^2 / ||y||^2`` on the training set per ``keys`` and seed,
    read from the centred nets' training loss at step 0.

    Trained on ``y``, the net ``f - c f_0`` starts at ``f_0 - c f_0``, so its
    MSE loss there is ``|y - (1 - c) f_0|^2 / 2m`` (``m`` entries): exactly
    the quadratic of :func:`ntkexp.ntk_drift.centering_terms` with
    ``from_y = |y|^2 / 2m``, ``from_f0 = -<y, f_0> / m`` and
    ``from_f0_squared = |f_0|^2 / 2m``; their ratio ``f0_over_y`` (the
    normalisation cancels) is how large the initial function the plain net
    (``c = 0``) has to undo is, against the targets.

    Returns:
        Columns ``keys``, ``seed`` and ``f0_over_y``; empty where no MSE run
        (``predictor == 'net_centered'``, ``step == 0``) has 3 or more
        centrings.
    """
    columns = keys + ['seed', 'f0_over_y']
    needed = {'metric', 'predictor', 'step', 'center_scale', 'seed', *keys}
    if not needed <= set(frame.columns):
        return pd.DataFrame(columns=columns)
    rows = frame[(frame['metric'] == 'train_loss')
                 & (frame['predictor'] == 'net_centered')
                 & (frame['step'] == 0) & frame['center_scale'].notna()]
    if 'loss' in rows.columns:  # cross-entropy has no such quadratic
        rows = rows[rows['loss'].isna() | (rows['loss'] == 'mse')]
    fits = _seed_fits(rows, keys)
    if fits.empty:
        return pd.DataFrame(columns=columns)
    return fits.assign(f0_over_y=fits['from_f0_squared'] / fits['from_y'])[columns]


def _seed_fits(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """:func:`ntkexp.ntk_drift.centering_terms` of ``rows``' ``value``
    against ``center_scale``, one row per ``keys`` and seed that ran 3 or
    more centrings, with ``largest``, its ``max |value|``; empty if none."""
    fits = []
    for key, part in rows.groupby(keys + ['seed'], dropna=False):
        if part['center_scale'].nunique() < 3:
            continue
        terms = ntk_drift.centering_terms(part['center_scale'], part['value'])
        fits.append({**dict(zip(keys + ['seed'], key)), **terms._asdict(),
                     'largest': float(part['value'].abs().max())})
    return pd.DataFrame(fits)


def _seed_fits_with_energy(rows: pd.DataFrame, keys: list[str],
                           energy: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`_seed_fits` with each seed's ``undone_share``, its
    ``f0_over_y`` from ``energy`` (:func:`initial_output_energy`, joined on
    its key columns; NaN without) and ``undone_share_per_f0``."""
    fits = _seed_fits(rows, keys)
    if fits.empty:
        return fits
    # How much of the growth from fitting y the plain net (c = 0) loses to
    # undoing f_0: 1 = all of it (inf/NaN where from_y = 0).
    fits['undone_share'] = _undone_share(fits)
    if energy is not None and not energy.empty:
        on = [c for c in energy.columns if c != 'f0_over_y']
        fits = fits.merge(energy, on=on, how='left')
    else:
        fits['f0_over_y'] = np.nan
    fits['undone_share_per_f0'] = _undone_share_per_f0(fits)
    return fits


def _fit_centerings(rows: pd.DataFrame, keys: list[str],
                    energy: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`ntkexp.ntk_drift.centering_terms` of ``rows``' ``value``
    against ``center_scale`` per ``keys`` and seed (where 3 or more
    centrings ran), then their mean and std over seeds per ``keys``;
    ``undone_share``: ``-(from_f0 + from_f0_squared) / from_y`` of the means,
    the share of the growth from fitting ``y`` that the plain net (``c = 0``)
    loses to undoing ``f_0`` (``undone_share_min`` / ``_max``: over the
    seeds' own fits); ``same_signs``: whether every seed's three terms have
    the signs of the means; ``f0_over_y``: the mean over seeds of
    ``energy``'s (:func:`initial_output_energy`, joined on its key columns;
    NaN without), and ``undone_share_per_f0``: ``undone_share`` over it,
    with its 95 % seed-bootstrap interval ``undone_share_per_f0_lo`` /
    ``_hi`` (:func:`_per_f0_interval`)."""
    fits = _seed_fits_with_energy(rows, keys, energy)
    return fits if fits.empty else summarise_seed_fits(fits, keys)


def summarise_seed_fits(fits: pd.DataFrame,
                         keys: list[str] | None = None) -> pd.DataFrame:
    """:func:`_fit_centerings`' statistics over the seeds of
    :func:`_seed_fits_with_energy`'s per-seed ``fits``, per ``keys``
    (default: the columns before ``seed``)."""
    keys = list(fits.columns[:fits.columns.get_loc('seed')]) if keys is None else keys
    # In _seed_fits' order, whatever order they come in: the same sums.
    fits = fits.sort_values(keys + ['seed'], kind='stable').reset_index(drop=True)
    terms = list(ntk_drift.CenteringTerms._fields)
    signed = terms[:-1]
    out = fits.groupby(keys, dropna=False).agg(
        seeds=('seed', 'count'),
        **{t: (t, 'mean') for t in terms},
        **{f'{t}_std': (t, 'std') for t in signed},
        largest=('largest', 'mean'),
        undone_share_min=('undone_share', 'min'),
        undone_share_max=('undone_share', 'max'),
        f0_over_y=('f0_over_y', 'mean')).reset_index()
    out['undone_share'] = _undone_share(out)
    # Every seed's fit has the signs of the mean's three terms (the groups
    # in the order of ``out``'s rows: both are the same sorted groupby).
    seeds = fits.groupby(keys, dropna=False)
    same = (np.sign(fits[signed]) == np.sign(seeds[signed].transform('mean'))).all(axis=1)
    out['same_signs'] = same.groupby([fits[k] for k in keys], dropna=False).all().to_numpy()
    # Per unit of the initial function's size: 0.29-0.57 for every net of
    # results/resnet-ntk-alpha/ at widths >= 512, whose shares span 10x.
    out['undone_share_per_f0'] = _undone_share_per_f0(out)
    f0_over_y = out.pop('f0_over_y')
    out.insert(len(out.columns) - 1, 'f0_over_y', f0_over_y)
    intervals = [_per_f0_interval(part) for _, part in seeds]  # out's order
    out[['undone_share_per_f0_lo', 'undone_share_per_f0_hi']] = (
        np.array(intervals).reshape(len(out), 2))
    return out


#: Seed resamples behind ``undone_share_per_f0_lo`` / ``_hi`` (fixed, so that
#: ``ntkexp plot`` writes the same tables each time).
BOOTSTRAP_RESAMPLES = 4000


def _per_f0_interval(fits: pd.DataFrame,
                     confidence: float = 0.95) -> tuple[float, float]:
    """The seed-bootstrap interval of ``undone_share_per_f0`` (its
    ``confidence`` percentile interval, ``scipy.stats.bootstrap``): the
    seeds are resampled with replacement, each with its three terms and its
    ``f0_over_y`` together, and the ratio of means recomputed. NaN with fewer
    than 2 seeds or without ``f0_over_y``. With the few seeds of a sweep (3
    to 8) it is rough, but it says whether two values differ by more than
    the seeds scatter."""
    data = fits[PER_F0_INPUTS].to_numpy(dtype=float)
    if len(data) < 2 or not np.isfinite(data).all():
        return np.nan, np.nan

    def per_f0(*columns, axis=-1):  # of the means over (resampled) seeds
        return ntk_drift.undone_share_per_f0(*(c.mean(axis) for c in columns))

    with np.errstate(divide='ignore', invalid='ignore'):
        if not np.isfinite(per_f0(*data.T)):  # e.g. a leaf that never moves
            return np.nan, np.nan
        result = scipy.stats.bootstrap(
            tuple(data.T), per_f0, paired=True, vectorized=True,
            confidence_level=confidence, method='percentile',
            n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(0))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


#: :func:`ntkexp.ntk_drift.undone_share_per_f0`'s arguments, as columns.
PER_F0_INPUTS = ['from_y', 'from_f0', 'from_f0_squared', 'f0_over_y']


def _undone_share(terms: pd.DataFrame) -> pd.Series:
    """:func:`ntkexp.ntk_drift.undone_share` of ``terms``' columns."""
    return ntk_drift.undone_share(*(terms[c] for c in PER_F0_INPUTS[:3]))


def _undone_share_per_f0(terms: pd.DataFrame) -> pd.Series:
    """:func:`ntkexp.ntk_drift.undone_share_per_f0` of ``terms``' columns."""
    return ntk_drift.undone_share_per_f0(*(terms[c] for c in PER_F0_INPUTS))


#: The per-leaf rows of ``experiment.ntk_layers`` -> legend label and style.
LAYER_METRICS = {'ntk_layer_scale_change': ('network', 'o-'),
                 'ntk_layer_scale_change_centered': ('centred network', 's--')}


def ntk_layer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and seed count of the per-leaf rows (``ntk_layer_share`` at
    initialisation, :data:`LAYER_METRICS` at each run's last step) per
    line, width and leaf, with the leaf's ``group``
    (:func:`ntkexp.ntk_drift.leaf_groups`); empty without
    ``experiment.ntk_layers`` rows."""
    return leaf_stats(layer_rows(frame))


def leaf_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`ntk_layer_table` of :func:`layer_rows`' rows."""
    if rows.empty:
        return rows
    keys = (['metric'] + line_columns(rows)
            + ['width', 'layer', 'layer_shape', 'group'])
    stats = (rows.groupby(keys, dropna=False)['value']
             .agg(['mean', 'std', 'count']).reset_index())
    return stats.rename(columns={'count': 'seeds'})


def ntk_layer_group_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`ntk_layer_table` summed over each part of the net (input
    layer, hidden layers or residual branches, readout:
    :data:`ntkexp.ntk_drift.LEAF_GROUPS`) per run and seed first, then the
    mean, std and seed count of the sums; the groups' shares add up to 1
    and their parts of the scale change to ``ntk_scale_change``."""
    return group_stats(layer_rows(frame))


def group_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`ntk_layer_group_table` of :func:`layer_rows`' rows."""
    if rows.empty:
        return rows
    lines = line_columns(rows)
    runs = [c for c in ('run_dir',) if c in rows.columns]
    per_seed = (rows.groupby(['metric'] + runs + lines + ['width', 'seed', 'group'],
                             dropna=False)['value'].sum().reset_index())
    stats = (per_seed.groupby(['metric'] + lines + ['width', 'group'], dropna=False)
             ['value'].agg(['mean', 'std', 'count']).reset_index())
    return in_group_order(stats.rename(columns={'count': 'seeds'}))


def in_group_order(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``group`` column in net order (input ... readout,
    then ``total``), rows sorted by it within each line."""
    order = {g: i for i, g in enumerate(ntk_drift.LEAF_GROUPS + ('total',))}
    before = list(table.columns[:table.columns.get_loc('group')])
    return (table.assign(_rank=table['group'].map(order))
            .sort_values(before + ['_rank'], kind='stable')
            .drop(columns='_rank').reset_index(drop=True))


def layer_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-leaf rows (``ntk_layer_share`` at initialisation,
    :data:`LAYER_METRICS` at each run's last step) with their ``group``;
    where runs swept the centring, only those at the default ``c = 1``
    (:func:`layer_centering_fit` uses the rest)."""
    metrics = ['ntk_layer_share', *LAYER_METRICS]
    rows = frame[frame['metric'].isin(metrics)]
    if rows.empty or 'layer' not in rows.columns:
        return pd.DataFrame()
    if 'center_scale' in rows.columns and rows['center_scale'].nunique() > 1:
        default = rows['center_scale'].isna() | (rows['center_scale'] == 1.0)
        if default.any():
            rows = rows[default].drop(columns='center_scale')
    share = rows[rows['metric'] == 'ntk_layer_share']
    rows = pd.concat([share, last_step(rows[rows['metric'] != 'ntk_layer_share'])])
    return with_leaf_groups(rows)


def with_leaf_groups(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-leaf rows with a ``group`` column:
    :func:`ntkexp.ntk_drift.leaf_groups` of each run's leaves at each width
    (ordered by ``layer``, shapes from ``layer_shape``)."""
    keys = [c for c in ('run_dir', 'model', 'depth', 'width') if c in rows.columns]
    leaves = rows[keys + ['layer', 'layer_shape']].drop_duplicates()
    parts = []
    for _, net in (leaves.groupby(keys, dropna=False) if keys else [(None, leaves)]):
        net = net.sort_values('layer')
        if net['layer'].duplicated().any():
            raise ValueError('per-leaf rows of one run and width disagree on a '
                             'leaf\'s shape; give each net its own run_dir')
        shapes = [ntk_drift.shape_from_text(t) for t in net['layer_shape']]
        parts.append(net.assign(group=ntk_drift.leaf_groups(shapes)))
    return rows.merge(pd.concat(parts), on=keys + ['layer', 'layer_shape'],
                      how='left')


def layer_centering_fit(frame: pd.DataFrame, per_seed: bool = False
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`centering_fit` part by part: each leaf's part of the centred
    net's scale change (``ntk_layer_scale_change_centered``) against the
    centring ``c``, fitted per seed as ``from_y + from_f0 (1 - c) +
    from_f0_squared (1 - c)**2``; the fit is linear in the values, so the
    parts' terms add up to the whole kernel's.

    Returns:
        ``(leaves, groups)``: mean and std over seeds per line, width and
        leaf; and the same of the sums over each of
        :data:`ntkexp.ntk_drift.LEAF_GROUPS` and over all leaves
        (``group == 'total'``); with ``per_seed``, each seed's fits
        instead. Both empty unless runs with ``experiment.ntk_layers``
        swept 3 or more centrings.
    """
    empty = pd.DataFrame(), pd.DataFrame()
    if 'center_scale' not in frame.columns or 'layer' not in frame.columns:
        return empty
    rows = frame[(frame['metric'] == 'ntk_layer_scale_change_centered')
                 & frame['center_scale'].notna()]
    if rows.empty:
        return empty
    rows = with_leaf_groups(last_step(rows))
    lines = line_columns(rows, without=('center_scale',)) + ['width']
    energy = initial_output_energy(frame, lines)
    fit = _seed_fits_with_energy if per_seed else _fit_centerings
    leaves = fit(rows, lines + ['layer', 'layer_shape', 'group'], energy)
    if leaves.empty:
        return empty
    # Summed within each run (a repeated run is a point of its own).
    at = lines + ['seed', 'center_scale'] + [c for c in ('run_dir',) if c in rows]
    groups = rows.groupby(at + ['group'], dropna=False)['value'].sum().reset_index()
    total = (rows.groupby(at, dropna=False)['value'].sum().reset_index()
             .assign(group='total'))
    groups = fit(pd.concat([groups, total]), lines + ['group'], energy)
    return leaves, in_group_order(groups)
