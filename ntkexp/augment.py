"""Data augmentation for kernel predictors by ensembling (Lee et al. 2020).

A kernel predictor cannot see augmented data the way SGD does, one random
transform per step: training on every transform of every image multiplies
the kernel's size and the solve's cubic cost. Lee et al. 2020 ("Finite
Versus Infinite Neural Networks: an Empirical Study", their "ensembling
kernel predictors" technique for data augmentation) instead train several
kernel predictors, each on the training set with every image transformed at
random, and average their test predictions.

This module draws those training sets:

* ``flip``: each image mirrored left-right with probability 1/2;
* ``crop``: each image shifted by a uniform ``(dy, dx)`` in
  ``[-crop, crop]^2`` pixels, vacated pixels zero (the standard CIFAR-10
  "pad by ``crop`` and crop back" augmentation, on standardised images where
  zero is the mean).

Draws depend on ``(seed, member)`` only, so member ``m`` is the same set in
every run, whatever the number of members. With flips alone, every member's
images are drawn from the pool ``[x; flip(x)]`` of ``2N`` images; its kernels
are then sub-matrices of the pool's (:func:`pool_indices`), which costs four
times one train kernel for any number of members, and the pool itself is
the fully flip-augmented training set (``union``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The ``experiment.augment`` options.

    Attributes:
        members: kernel predictors in the ensemble; 0 turns augmentation off.
        flip: mirror each image left-right with probability 1/2.
        crop: largest shift in pixels (0: none).
        union: also train one predictor on the whole pool ``[x; flip(x)]``
            (flips only).
        seed: seed of the draws (independent of the run's seed).
    """
    members: int = 0
    flip: bool = True
    crop: int = 0
    union: bool = False
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.members > 0 or self.union

    @property
    def flips_only(self) -> bool:
        """Flips and no shifts: members are sub-sets of the flip pool."""
        return self.flip and self.crop == 0

    @property
    def label(self) -> str:
        """A short name for rows and figures, e.g. ``flip``, ``flip+crop4``."""
        parts = (['flip'] if self.flip else []) + (
            [f'crop{self.crop}'] if self.crop else [])
        return '+'.join(parts)


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f'experiment.augment.{name}={value!r}: must be a whole '
                         f'number >= 0, e.g. experiment.augment.{name}=4')
    return int(value)


def from_config(options: Mapping[str, Any] | None) -> Augmentation:
    """Validated :class:`Augmentation` from ``experiment.augment`` (or None).

    Raises:
        ValueError: an unknown key, a negative or fractional count, or
            augmentation asked for with no transform (or ``union`` with shifts).
    """
    options = dict(options or {})
    known = {f.name for f in dataclasses.fields(Augmentation)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f'experiment.augment has unknown keys {unknown}; the keys '
                         f'are {sorted(known)}')
    aug = Augmentation(
        members=_whole(options.get('members', 0), 'members'),
        flip=bool(options.get('flip', True)),
        crop=_whole(options.get('crop', 0), 'crop'),
        union=bool(options.get('union', False)),
        seed=_whole(options.get('seed', 0), 'seed'))
    if aug.enabled and not (aug.flip or aug.crop):
        raise ValueError('experiment.augment: members > 0 but no transform; set '
                         'experiment.augment.flip=true or experiment.augment.crop=4')
    if aug.union and not aug.flips_only:
        raise ValueError('experiment.augment.union=true trains on [x; flip(x)] and '
                         'needs flips alone; set experiment.augment.crop=0 or '
                         'experiment.augment.union=false')
    return aug


def check_images(x: np.ndarray) -> None:
    """Augmentation transforms images ``(N, H, W, C)``.

    Raises:
        ValueError: ``x`` is not 4-D (flattened images or vector data).
    """
    if x.ndim != 4:
        raise ValueError(f'experiment.augment flips and shifts images (N, H, W, C), '
                         f'but the inputs have shape {x.shape}; use an image '
                         'dataset with dataset.flatten=false (fully connected '
                         'models flatten images themselves)')


def flip_lr(x: np.ndarray) -> np.ndarray:
    """Images ``(N, H, W, C)`` mirrored left-right."""
    return x[:, :, ::-1, :]


def shift(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each image translated by its ``(dy, dx)``, vacated pixels zero.

    Args:
        x: images ``(N, H, W, C)``.
        shifts: integers ``(N, 2)``; image ``i``'s pixel ``(r, c)`` moves to
            ``(r + dy_i, c + dx_i)`` (dropped when outside).
    """
    shifts = np.asarray(shifts, int)
    pad = int(np.abs(shifts).max(initial=0))
    if pad == 0:
        return x.copy()
    _, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.empty_like(x)
    for dy, dx in {tuple(s) for s in shifts.tolist()}:
        rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        out[rows] = padded[rows, pad - dy:pad - dy + h, pad - dx:pad - dx + w]
    return out


@dataclasses.dataclass(frozen=True)
class Draw:
    """One member's transforms: ``flips`` bool ``(N,)``, ``shifts`` ``(N, 2)``."""
    flips: np.ndarray
    shifts: np.ndarray


def draw(aug: Augmentation, n: int, member: int) -> Draw:
    """Member ``member``'s random transforms of ``n`` images (seeded by
    ``(aug.seed, member)`` alone)."""
    rng = np.random.default_rng([aug.seed, member])
    flips = rng.random(n) < 0.5 if aug.flip else np.zeros(n, bool)
    shifts = (rng.integers(-aug.crop, aug.crop + 1, size=(n, 2)) if aug.crop
              else np.zeros((n, 2), int))
    return Draw(flips=flips, shifts=shifts)


def apply(x: np.ndarray, transforms: Draw) -> np.ndarray:
    """The images with one member's transforms (flip first, then shift)."""
    out = np.where(transforms.flips[:, None, None, None], flip_lr(x), x)
    return shift(out, transforms.shifts)


def pool(x: np.ndarray) -> np.ndarray:
    """The flip pool ``[x; flip(x)]`` (``2N`` images)."""
    return np.concatenate([x, flip_lr(x)])


def pool_indices(transforms: Draw) -> np.ndarray:
    """Rows of :func:`pool` that a flips-only member's images are:
    ``apply(x, d) == pool(x)[pool_indices(d)]``."""
    n = len(transforms.flips)
    return np.arange(n) + n * transforms.flips.astype(int)
