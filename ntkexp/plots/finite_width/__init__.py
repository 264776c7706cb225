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
* ``depth_accuracy`` (Huang et al. 2020 with finite nets): with three or
  more depths, per model at one width, each predictor's test accuracy and
  the NTK's change against the depth, beside the kernels of the same depth;
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

The figures live in modules by paper: ``jacot`` (``ntk_slice``,
``functions``), ``drift`` (``ntk_drift*``, ``ntk_layer*``, ``nth``),
``dynamics`` (``distance``, ``curves``) and ``accuracy`` (``finite_vs_kernel``,
``ensemble``, ``l2``, ``lr``, ``width_accuracy``, ``depth_accuracy``); what
they share (labels, saving, diverged runs, log-log slopes) is in ``common``.
Each ``plot_*`` function takes the rows, the output folder and the
experiment's name and returns the paths it wrote (none when the rows lack
what it needs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ntkexp.plots.finite_width.accuracy import (
    plot_depth_accuracy, plot_ensemble, plot_finite_vs_kernel, plot_l2, plot_lr,
    plot_width_accuracy)
from ntkexp.plots.finite_width.common import loglog_by_model, plain_rows
from ntkexp.plots.finite_width.drift import (
    DRIFT_PARTS, DRIFTS, drift_against, plot_nth, plot_ntk_drift, plot_ntk_drift_against,
    plot_ntk_layer_centering, plot_ntk_layers)
from ntkexp.plots.finite_width.dynamics import plot_curves, plot_distance
from ntkexp.plots.finite_width.jacot import plot_functions, plot_ntk_slice

# The figures, and what other modules and tests use from here.
__all__ = [
    'DRIFTS', 'DRIFT_PARTS', 'drift_against', 'loglog_by_model', 'plot', 'plot_curves',
    'plot_depth_accuracy', 'plot_distance', 'plot_ensemble', 'plot_finite_vs_kernel',
    'plot_functions', 'plot_l2', 'plot_lr', 'plot_nth', 'plot_ntk_drift',
    'plot_ntk_drift_against', 'plot_ntk_layer_centering', 'plot_ntk_layers', 'plot_ntk_slice',
    'plot_width_accuracy',
]


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws every figure the rows allow, per experiment name.

    Args:
        frame: the experiment's long-format rows (``ntkexp collect``).
        out_dir: where the PNG / PDF files go.

    Returns:
        The paths written.
    """
    frame = plain_rows(frame)
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
