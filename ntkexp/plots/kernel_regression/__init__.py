"""Figures of the ``kernel_regression`` experiment (infinite-width NNGP / NTK).

Drawn from the experiment's long-format rows (many runs; mean +- std over
seeds), each only when the table has what it needs:

* ``architectures``: the best test accuracy over ``diag_reg`` per
  architecture (FC, CNN-VEC, CNN-GAP, ...), NNGP vs NTK, without / with ZCA,
  one panel per dataset (Lee et al. 2020, Table 1; numbers from
  :func:`architecture_table`, in ``architectures.csv``); where the runs
  scored a validation split (``dataset.n_valid``), the test accuracy at the
  ``diag_reg`` best on it;
* ``diag_reg``: test accuracy and MSE against the diagonal regulariser
  ``eps`` of ``K + eps * mean(diag K) * I``, one line per kernel and model
  (Lee et al. 2020, Sec. 3.7 / Fig. 5: regularisation of NNGP and NTK);
* ``zca``: the best test accuracy over ``diag_reg`` against the ZCA
  regulariser, when two or more strengths were run (Lee et al. 2020's ZCA
  study);
* ``n_train``: test accuracy against the number of training points, log
  scale (Arora et al. 2020, "Harnessing the power of infinitely wide deep
  nets on small-data tasks", Fig. 1 / Table 1; Lee et al. 2020 Fig. 6);
* ``nngp_vs_ntk``: NNGP against NTK performance for matched settings, with
  the diagonal (Lee et al. 2020, Sec. 3.3: "NNGP often outperforms NTK");
* ``time``: test and train MSE along the infinite-width gradient flow at
  finite training times ``t`` (Lee et al. 2019 / 2020).
* ``early_stopping``: test accuracy and MSE against ``diag_reg`` at ``t =
  inf`` (solid) and, on the same axis, against the ``diag_reg`` that each
  finite training time stands for (``t_as_diag_reg``, the flow at the
  smallest ``diag_reg``; markers, dotted), when a run has three or more of
  each (Lee et al. 2020, Sec. 3: diagonal regularisation acts like early
  stopping);
* ``depth``: against the depth, the best test accuracy over ``diag_reg`` and
  the train kernel's geometry rows (``experiment.kernel_stats``: spread and
  mean of the off-diagonal cosines, centred kernel-target alignment), one
  line per model (and ``alpha_gamma``) and kernel, one row of panels per
  dataset (Huang et al. 2020: the FC NTK degenerates with depth, the
  ResNTK with ``alpha = L^(-gamma)`` does not); with ``depth.csv``;
* ``augment``: the best test accuracy over ``diag_reg`` of the
  data-augmentation ensemble against its size (``experiment.augment``;
  Lee et al. 2020, ensembling kernel predictors), from the plain predictor at
  0 members; a star for one predictor on all of ``[x; flip(x)]``; one panel
  per dataset and augmentation; with ``augment.csv``;

Only ``t = inf`` (fully trained / posterior mean) rows enter the first three.

The figures live in modules by subject: ``architectures`` (``architectures``,
``zca``, ``nngp_vs_ntk``, ``summary``), ``regularisation`` (``diag_reg``,
``time``, ``early_stopping``) and ``size_sweeps`` (``n_train``, ``depth``,
``augment``); ``selection`` picks ``diag_reg`` (:func:`architecture_table`),
and ``common`` holds what they share (labels, lines and colours of a sweep,
panels, saving). Each ``plot_*`` function takes the rows and the output
folder and returns the paths it wrote (none when the rows lack what it
needs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ntkexp.plots.kernel_regression.architectures import (
    plot_architectures, plot_nngp_vs_ntk, plot_summary, plot_zca)
from ntkexp.plots.kernel_regression.regularisation import (
    plot_diag_reg, plot_early_stopping, plot_time)
from ntkexp.plots.kernel_regression.selection import architecture_table
from ntkexp.plots.kernel_regression.size_sweeps import plot_augment, plot_depth, plot_n_train

# The figures, and the table other modules and tests use from here.
__all__ = [
    'architecture_table', 'plot', 'plot_architectures', 'plot_augment', 'plot_depth',
    'plot_diag_reg', 'plot_early_stopping', 'plot_n_train', 'plot_nngp_vs_ntk', 'plot_summary',
    'plot_time', 'plot_zca',
]


def plot(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Draws every figure the rows support; returns the files (PNG and PDF).

    Args:
        frame: ``kernel_regression`` rows from ``ntkexp collect`` (ok runs).
        out_dir: where the figures go (created).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for column in ('diag_reg', 't', 'n_train', 't_as_diag_reg', 'members'):
        if column in frame.columns:
            frame = frame.assign(**{column: pd.to_numeric(frame[column],
                                                          errors='coerce')})
    paths: list[Path] = plot_depth(frame, out_dir) + plot_augment(frame, out_dir)
    # The tables that pick diag_reg also read the validation scores.
    picked = frame[frame['metric'].isin(['accuracy', 'mse', 'val_accuracy', 'val_mse'])]
    frame = frame[frame['metric'].isin(['accuracy', 'mse', 'train_mse', 'variance'])]
    for figure in (plot_architectures, plot_diag_reg, plot_zca, plot_n_train,
                   plot_nngp_vs_ntk, plot_time, plot_early_stopping):
        paths += figure(picked if figure in (plot_architectures, plot_diag_reg, plot_zca)
                        else frame,
                        out_dir)
    if not paths:
        paths += plot_summary(frame, out_dir)
    return paths
