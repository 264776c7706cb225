"""The :class:`Dataset` record every dataset config instantiates to."""

from __future__ import annotations

import dataclasses

import numpy as np

TASKS = ('classification', 'regression')


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test arrays of one dataset, ready for a model or a kernel.

    ``hydra.utils.instantiate(cfg.dataset)`` returns one of these.

    Attributes:
        name: the dataset's name (the config's ``name`` key, e.g. ``'mnist'``).
        x_train: inputs, float32 (or the requested ``dtype``). Images are NHWC
            ``(N, H, W, C)`` unless the dataset was built with ``flatten=True``,
            then ``(N, H*W*C)``; vector datasets are ``(N, d)``.
        y_train: targets, always 2-D ``(N, k)``: one-hot / centred one-hot
            columns for classification, regression values otherwise.
        x_test: test inputs, same layout as ``x_train``.
        y_test: test targets, same layout as ``y_train``.
        labels_train: integer class labels ``(N,)``, or None for generated
            regression data.
        labels_test: integer class labels of the test split, or None.
        x_valid, y_valid, labels_valid: a validation split drawn from the
            training pool, disjoint from ``x_train`` (``dataset.n_valid``;
            Lee et al. 2020 tune ``diag_reg`` on one), or None.
        n_classes: number of classes, or None for generated regression data.
        task: ``'classification'`` (one-hot targets) or ``'regression'``.
        source: where the raw data came from (``'sklearn'``, ``'generated'``,
            ``'local:<dir>'``, ``'tfds:<data_dir>'``, ``'cache:<file>'`` ...);
            informational, for run records.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_train: np.ndarray | None = None
    labels_test: np.ndarray | None = None
    n_classes: int | None = None
    task: str = 'classification'
    source: str = ''
    x_valid: np.ndarray | None = None
    y_valid: np.ndarray | None = None
    labels_valid: np.ndarray | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f'Dataset {self.name!r}: task must be one of '
                             f'{TASKS}, got {self.task!r}.')
        if (self.x_valid is None) != (self.y_valid is None):
            raise ValueError(f'Dataset {self.name!r}: give x_valid and y_valid together.')
        for split in ('train', 'test') + (('valid',) if self.x_valid is not None else ()):
            x = getattr(self, f'x_{split}')
            y = getattr(self, f'y_{split}')
            labels = getattr(self, f'labels_{split}')
            if y.ndim != 2:
                raise ValueError(f'Dataset {self.name!r}: y_{split} must be 2-D '
                                 f'(N, k), got shape {y.shape}.')
            if len(x) != len(y) or (labels is not None and len(labels) != len(x)):
                raise ValueError(
                    f'Dataset {self.name!r}: {split} split has {len(x)} inputs but '
                    f'{len(y)} targets' + (
                        f' and {len(labels)} labels.' if labels is not None else '.'))
        for split in ('test', 'valid'):
            x = getattr(self, f'x_{split}')
            if x is not None and self.x_train.shape[1:] != x.shape[1:]:
                raise ValueError(f'Dataset {self.name!r}: train inputs {self.x_train.shape} '
                                 f'and {split} inputs {x.shape} differ in shape.')

    @property
    def n_train(self) -> int:
        """Number of training examples."""
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        """Number of test examples."""
        return len(self.x_test)

    @property
    def n_valid(self) -> int:
        """Number of validation examples (0 without a validation split)."""
        return 0 if self.x_valid is None else len(self.x_valid)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(28, 28, 1)`` or ``(784,)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f'Dataset(name={self.name!r}, task={self.task!r}, '
                f'x_train={self.x_train.shape} {self.x_train.dtype}, '
                f'y_train={self.y_train.shape}, x_test={self.x_test.shape}, '
                + (f'x_valid={self.x_valid.shape}, ' if self.x_valid is not None else '') +
                f'n_classes={self.n_classes}, source={self.source!r})')
