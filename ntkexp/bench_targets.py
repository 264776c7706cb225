"""The performance issues' targets, checked against a GPU run's benchmark CSVs.

Issue 10 (fast convolutional kernels): at least :data:`FAST_KERNEL_SPEEDUP`
times plain neural-tangents' entries/s for Myrtle-5 and a CNN-GAP net,
measured side by side in one run, float32 results within
:data:`FLOAT32_REL` relative of neural-tangents' (float64 within
:data:`FLOAT64_REL`), and the full CIFAR-10 Myrtle-5 NTK projected at under
:data:`CIFAR10_HOURS` GPU-hours. Issue 9 (benchmarks): ntkexp's structured
derivatives at least :data:`STRUCTURED_SPEEDUP` times Jacobian contraction
for the WRN empirical NTK, and the CNN-GAP and WRN infinite-width kernels at
least :data:`INFINITE_SPEEDUP` times plain neural-tangents, both within
:data:`EMPIRICAL_REL`.

:func:`main` reads the CSVs ``tools/gpu_check.sh`` writes under one folder
(those of ``python -m ntkexp.fastconv.bench``, ``fastconv*.csv``, and of
``python -m ntkexp.bench``, ``bench_*.csv``: ``make bench``'s fast-kernel
rows and its empirical NTKs), prints each
row against its targets as Markdown tables, and names the Pallas kind and
warps ``fast_kernel='auto'`` should take on that GPU
(:data:`ntkexp.fastconv.select.GPU_AUTO_PALLAS_KIND`,
:data:`ntkexp.fastconv.pallas.DIAGONAL_NUM_WARPS`): the one whose slowest
architecture is fastest among those meeting issue 10 on both. It judges
what was measured; it measures nothing::

    python -m ntkexp.bench_targets /path/to/gpu_check_out
    python -m ntkexp.bench_targets /path/to/gpu_check_out --choice  # KIND:WARPS
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

#: Issue 10's targets.
FAST_KERNEL_SPEEDUP = 10.0
FLOAT32_REL = 1e-5
FLOAT64_REL = 1e-10
CIFAR10_HOURS = 8.0
#: The GPU whose hours :data:`CIFAR10_HOURS` counts (as the device column of
#: the benches' CSVs names it).
HOURS_DEVICE = 'H100'
#: GPUs whose hours bound an H100's (a regular expression on the device
#: name), with the most an H100 can take per hour of theirs. The H200 SXM,
#: which ``nvidia-smi`` names plainly 'NVIDIA H200' (not the 600 W 'H200
#: NVL'), is the H100 SXM's chip (GH100: 132 SMs, the same clocks and
#: arithmetic rates) with HBM3e at 4.8 TB/s against HBM3 at 3.35 TB/s, by
#: NVIDIA's data sheets. So an H100 takes at least an H200's time, and at
#: most 4.8 / 3.35 = 1.43 times it, the ratio reached only if all the time
#: were HBM traffic. (The fast kernels' blocks move gigabytes, far past
#: either's L2.) The CIFAR-10 hours are a projection from a block's rate
#: either way. A Myrtle-5 row on such a GPU meets the hours target when
#: that upper bound is under :data:`CIFAR10_HOURS`, misses it when its own
#: hours are not, and leaves it to an H100 in between.
HOURS_BOUNDS = {r'H200(?! NVL)': 4.8 / 3.35}
#: The architectures issue 10 names (``ntkexp.fastconv.bench``'s names).
FAST_KERNEL_ARCHS = ('myrtle5', 'cnn_gap')
#: Issue 9's targets: the WRN empirical NTK's structured derivatives, and
#: the CNN-GAP and WRN infinite-width kernels against plain neural-tangents
#: ("from blocking, layout and precision choices alone"), float32 results
#: within ``EMPIRICAL_REL`` of the reference in both.
STRUCTURED_SPEEDUP = 3.0
EMPIRICAL_REL = 1e-6
INFINITE_SPEEDUP = 2.0
INFINITE_ARCHS = ('cnn_gap', 'wrn')
#: Kinds that build the same program for an architecture as another kind:
#: Myrtle's stages end in pools, so the GAP tail fuses nothing there
#: (``ntkexp.fastconv.recursion.pair_kernels``).
SAME_PROGRAM = {('myrtle5', 'diagonal_first_masked_tail'):
                'diagonal_first_masked'}

_PALLAS = re.compile(r'^fastconv_pallas_(?P<rest>.+)$')


@dataclasses.dataclass(frozen=True)
class PallasMethod:
    """A Pallas row's method name, parsed: ``fastconv_pallas_<kind>_w<warps>``
    with an optional ``_<variant>`` (``ntkexp.fastconv.bench``)."""
    kind: str
    warps: int
    variant: str = 'default'


def parse_pallas_method(method: str, kinds: Sequence[str]
                        ) -> Optional[PallasMethod]:
    """The kind, warps and recursion variant of a Pallas row's ``method``
    (``'fastconv_pallas_w4'`` is the ``rows`` kind), None for other rows or
    kinds not in ``kinds``."""
    match = _PALLAS.match(method)
    if not match:
        return None
    rest = 'rows_' + match['rest'] if match['rest'].startswith('w') else \
        match['rest']
    for kind in sorted(kinds, key=len, reverse=True):
        tail = re.fullmatch(re.escape(kind) + r'_w(\d+)(?:_(.+))?', rest)
        if tail:
            return PallasMethod(kind, int(tail[1]), tail[2] or 'default')
    return None


def read_csvs(folder: str | Path, pattern: str) -> pd.DataFrame:
    """The rows of every CSV under ``folder`` matching ``pattern``, with a
    column ``file`` (its path relative to ``folder``); empty if none."""
    folder = Path(folder)
    frames = [pd.read_csv(path).assign(file=str(path.relative_to(folder)))
              for path in sorted(folder.rglob(pattern))]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or NaNs where the CSV has no such column."""
    return frame[name] if name in frame else pd.Series(math.nan,
                                                       index=frame.index)


def _devices_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's ``device`` as the benches name it (``''`` where none)."""
    return _column(frame, 'device').fillna('').astype(str)


def on_gpu(frame: pd.DataFrame) -> pd.Series:
    """Whether each row ran on a GPU: the issues' targets are a GPU's, so
    rows of a CPU (``cpu``, ``cpu:cpu``) or of no named device are shown,
    not judged."""
    device = _devices_of(frame)
    return (device != '') & ~device.str.lower().str.contains('cpu')


#: ``make bench``'s rows of the fast kernels in ntkexp's block engine
#: (``ntkexp.bench``: the XLA recursion, and what ``fast_kernel=auto`` runs
#: where that differs).
ENGINE_METHODS = ('ntkexp_fastconv_engine', 'ntkexp_auto_engine')


def engine_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``make bench``'s infinite-width fast-kernel rows (``python -m
    ntkexp.bench``, :data:`ENGINE_METHODS`) in the columns of
    ``ntkexp.fastconv.bench``'s CSVs, for :func:`fast_kernel_verdicts`: the
    ratio to one ``jit`` call of neural-tangents on the same images, the
    relative difference from it, and the CIFAR-10 hours at the row's rate
    (60,000 images, one triangle, as ``ntkexp.fastconv.bench`` counts)."""
    if frame.empty or 'benchmark' not in frame:
        return pd.DataFrame()
    rows = frame[(frame.benchmark == 'infinite_ntk')
                 & frame.method.isin(ENGINE_METHODS)
                 & frame.arch.isin(FAST_KERNEL_ARCHS + INFINITE_ARCHS)].copy()
    if rows.empty:
        return rows
    from ntkexp.fastconv.bench import CIFAR10_ENTRIES  # pylint: disable=g-import-not-at-top
    return rows.assign(
        speedup_vs_nt=_column(rows, 'ratio_vs_nt_jit'),
        rel_diff_vs_nt=_column(rows, 'rel_diff'),
        cifar10_hours=CIFAR10_ENTRIES / _column(rows, 'entries_per_s') / 3600)


def fast_kernel_rows(folder: str | Path) -> pd.DataFrame:
    """Every fast-kernel row under ``folder``: ``ntkexp.fastconv.bench``'s
    CSVs and ``make bench``'s engine rows (:func:`engine_rows`)."""
    return pd.concat([read_csvs(folder, 'fastconv*.csv'),
                      engine_rows(read_csvs(folder, 'bench_*.csv'))],
                     ignore_index=True)


def fast_kernel_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Issue 10's targets for each fast-kernel row (``method`` other than
    ``nt``) of ``python -m ntkexp.fastconv.bench`` CSVs: columns
    ``device``, ``speedup``, ``rel_diff``, ``hours`` (the CIFAR-10 triangle
    at the row's rate, on the row's device), ``h100_hours_max`` (the most
    H100-hours those stand for, :func:`h100_hours_max`), ``hours_met``
    (Myrtle-5 only: under :data:`CIFAR10_HOURS` on a :data:`HOURS_DEVICE`,
    or bounded so on an H200 (:data:`HOURS_BOUNDS`); ``'needs an H100'``
    where the bound straddles the target or the device gives none),
    ``meets`` (every target of the
    issue that the row's device can judge; False for errors), and
    ``issue9_2x`` (issue 9's :data:`INFINITE_SPEEDUP` within
    :data:`EMPIRICAL_REL`, for :data:`INFINITE_ARCHS` only); both False for
    rows not :func:`on_gpu`."""
    if frame.empty:
        return frame
    rows = frame[frame.method != 'nt'].copy()
    tolerance = _column(rows, 'dtype').map(
        {'float64': FLOAT64_REL}).fillna(FLOAT32_REL)
    rows['speedup'] = _column(rows, 'speedup_vs_nt')
    rows['rel_diff'] = _column(rows, 'rel_diff_vs_nt')
    rows['hours'] = _column(rows, 'cifar10_hours')
    rows['device'] = _devices_of(rows)
    rows['h100_hours_max'] = h100_hours_max(rows)
    fast = rows.speedup >= FAST_KERNEL_SPEEDUP
    exact = rows.rel_diff <= tolerance
    myrtle = rows.arch == 'myrtle5'
    under = rows.h100_hours_max < CIFAR10_HOURS
    over = rows.hours >= CIFAR10_HOURS  # an H100 is no faster than these
    judged = myrtle & (rows.device.str.contains(HOURS_DEVICE)
                       | (rows.h100_hours_max.notna() & (under | over)))
    quick = ~judged | under
    rows['hours_met'] = under.where(
        judged, f'needs an {HOURS_DEVICE}').where(myrtle, '')
    ok = _column(rows, 'error').isna() & on_gpu(rows)
    rows['meets'] = fast & exact & quick & ok
    # Issue 9's 2x, for the architectures it names (empty elsewhere).
    rows['issue9_2x'] = ((rows.speedup >= INFINITE_SPEEDUP)
                         & (rows.rel_diff <= EMPIRICAL_REL) & ok).where(
                             rows.arch.isin(INFINITE_ARCHS), '')
    return rows


def h100_hours_max(rows: pd.DataFrame) -> pd.Series:
    """The most H100-hours each row's ``hours`` can stand for: the hours
    themselves on an H100, times :data:`HOURS_BOUNDS`'s factor on a GPU
    that bounds it, NaN on any other device."""
    factor = pd.Series(math.nan, index=rows.index)
    device = _devices_of(rows)
    for pattern, bound in {HOURS_DEVICE: 1.0, **HOURS_BOUNDS}.items():
        factor = factor.mask(device.str.contains(pattern), bound)
    return _column(rows, 'hours') * factor


def recommend_pallas(verdicts: pd.DataFrame, kinds: Sequence[str]
                     ) -> Optional[tuple[str, int, float]]:
    """``(kind, warps, speedup)``: of the Pallas kinds and warps (default
    recursion variant) that meet issue 10 for every architecture of
    :data:`FAST_KERNEL_ARCHS` (a kind timed on CNN-GAP only counts for
    Myrtle-5 with the rows of the kind that builds the same program there,
    :data:`SAME_PROGRAM`), the one whose slowest architecture's speedup is
    highest, with that speedup; None if none meets it everywhere. A kind and
    warps timed twice count at the slower time, and not at all where either
    time misses the target."""
    speedups: dict[tuple[str, int, str], list[tuple[float, bool]]] = {}
    for row in verdicts.itertuples():
        method = parse_pallas_method(row.method, kinds)
        if method is not None and method.variant == 'default':
            speedups.setdefault((method.kind, method.warps, row.arch),
                                []).append((row.speedup, bool(row.meets)))

    def speedup(kind: str, warps: int, arch: str) -> Optional[float]:
        found = speedups.get((kind, warps, arch))
        if found is None and (arch, kind) in SAME_PROGRAM:
            found = speedups.get((SAME_PROGRAM[arch, kind], warps, arch))
        if not found or not all(meets for _, meets in found):
            return None
        return min(s for s, _ in found)

    candidates = []
    for kind, warps in sorted({key[:2] for key in speedups}):
        found = [speedup(kind, warps, arch) for arch in FAST_KERNEL_ARCHS]
        if all(s is not None for s in found):
            candidates.append((min(found), kind, warps))
    if not candidates:
        return None
    slowest, kind, warps = max(candidates)
    return kind, warps, slowest


def empirical_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Issue 9's structured-derivatives target for each row of ``python -m
    ntkexp.bench --only empirical`` CSVs that computes a kernel (timed-only
    bounds have no ``rel_diff``): ``meets`` when its ratio to Jacobian
    contraction is at least :data:`STRUCTURED_SPEEDUP` within
    :data:`EMPIRICAL_REL`, on a GPU (:func:`on_gpu`)."""
    if frame.empty:
        return frame
    rows = frame[_column(frame, 'benchmark').fillna('empirical_ntk')
                 == 'empirical_ntk'].copy()
    rows['speedup'] = _column(rows, 'ratio_vs_jacobian_contraction')
    rows['rel_diff'] = _column(rows, 'rel_diff')
    rows['bound'] = rows.rel_diff.isna() & _column(rows, 'error').isna()
    rows['meets'] = ((rows.speedup >= STRUCTURED_SPEEDUP)
                     & (rows.rel_diff <= EMPIRICAL_REL)
                     & (rows.method != 'JACOBIAN_CONTRACTION')
                     & on_gpu(rows))
    return rows


def _table(rows: pd.DataFrame, columns: Sequence[str]) -> str:
    """Markdown table of ``columns`` (those present)."""
    columns = [c for c in columns if c in rows]
    rows = rows.copy()
    if 'error' in rows:
        rows['error'] = rows.error.fillna('').astype(str).str.slice(0, 80)
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    for row in rows[columns].itertuples(index=False):
        lines.append('| ' + ' | '.join(
            f'{v:.3g}' if isinstance(v, float) else str(v) for v in row)
            + ' |')
    return '\n'.join(lines)


def _devices(rows: pd.DataFrame) -> str:
    """The line naming the devices of ``rows`` (the CSVs' ``device``), and
    saying so where some rows are not judged for want of a GPU."""
    names = sorted(set(_devices_of(rows)) - {''})
    line = f"Device: {', '.join(names) or 'not named in the CSVs'}."
    if not on_gpu(rows).all():
        line += (' Rows not on a GPU are shown, not judged (meets False): '
                 "the issues' targets are a GPU's.")
    return line


def report(folder: str | Path, kinds: Sequence[str]) -> str:
    """The Markdown report of :func:`main` for the CSVs under ``folder``."""
    lines = [f'# Targets against the CSVs under {folder}', '']
    fast = fast_kernel_verdicts(fast_kernel_rows(folder))
    lines.append(f'## Issue 10: >= {FAST_KERNEL_SPEEDUP:g}x plain '
                 f'neural-tangents, float32 within {FLOAT32_REL:g} (float64 '
                 f'{FLOAT64_REL:g}), Myrtle-5 CIFAR-10 under '
                 f'{CIFAR10_HOURS:g} {HOURS_DEVICE}-hours')
    if fast.empty:
        archs = ', '.join(dict.fromkeys(FAST_KERNEL_ARCHS + INFINITE_ARCHS))
        lines.append(f'no fast-kernel rows: fastconv*.csv, or bench_*.csv with '
                     f'infinite-width rows of {archs} (e.g. python -m ntkexp.bench '
                     f'--only infinite --arch {archs.replace(", ", " ")})')
    else:
        lines.append(_devices(fast))
        bounded = (fast.arch == 'myrtle5') & on_gpu(fast) & ~_devices_of(
            fast).str.contains(HOURS_DEVICE)
        if (bounded & fast.h100_hours_max.notna()).any():
            lines.append(
                f"Myrtle-5 rows off an {HOURS_DEVICE} give their device's "
                f'hours; on an H200 an {HOURS_DEVICE} (the same chip, less '
                'memory bandwidth) takes between 1x and '
                f'{max(HOURS_BOUNDS.values()):.2f}x of them (column '
                f'h100_hours_max): the {CIFAR10_HOURS:g}-hour target is '
                'judged on that bound.')
        if ((fast.hours_met == f'needs an {HOURS_DEVICE}')
                & on_gpu(fast)).any():
            lines.append(
                f'Myrtle-5 rows marked "needs an {HOURS_DEVICE}" (column '
                f'hours_met): their hours cannot decide the '
                f'{CIFAR10_HOURS:g}-hour target; it waits for a run on an '
                f'{HOURS_DEVICE}. Their ratios and accuracy are judged here.')
        lines.append('')
        lines.append(_table(fast.sort_values(['arch', 'speedup'],
                                             ascending=[True, False]),
                            ['arch', 'method', 'dtype', 'speedup',
                             'rel_diff', 'hours', 'h100_hours_max',
                             'hours_met', 'meets',
                             'issue9_2x', 'error', 'file']))
        choice = recommend_pallas(fast, kinds)
        lines.append('')
        lines.append(
            'No Pallas kind meets issue 10 for both Myrtle-5 and CNN-GAP: '
            'keep GPU_AUTO_PALLAS_KIND = None.' if choice is None else
            f'Fastest Pallas kind meeting issue 10 for both (slowest of the '
            f'two {choice[2]:.2f}x): set ntkexp.fastconv.select.'
            f'GPU_AUTO_PALLAS_KIND = {choice[0]!r} and ntkexp.fastconv.'
            f'pallas.DIAGONAL_NUM_WARPS = {choice[1]}.')
    empirical = empirical_verdicts(read_csvs(folder, 'bench_*.csv'))
    lines += ['', f'## Issue 9: structured derivatives >= '
                  f'{STRUCTURED_SPEEDUP:g}x Jacobian contraction within '
                  f'{EMPIRICAL_REL:g}']
    if empirical.empty:
        lines.append('no empirical bench CSV')
    else:
        lines += [_devices(empirical), '']
        lines.append(_table(empirical, ['method', 'matmul_precision',
                                        'seconds', 'speedup', 'rel_diff',
                                        'bound', 'meets', 'error', 'file']))
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ntkexp.fastconv import pallas  # pylint: disable=g-import-not-at-top
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folder', type=Path,
                        help="a GPU run's output folder (tools/gpu_check.sh's "
                             '$OUT)')
    parser.add_argument('--choice', action='store_true',
                        help='print only the recommended KIND:WARPS (nothing '
                        'if no Pallas kind meets issue 10 on both networks), '
                        'for `python -m ntkexp.bench --gpu-auto-pallas-kind`')
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f'{args.folder} is not a folder: give the folder a GPU '
                     f'run wrote its CSVs to')
    if args.choice:
        choice = recommend_pallas(
            fast_kernel_verdicts(fast_kernel_rows(args.folder)),
            pallas.KINDS)
        if choice is not None:
            print(f'{choice[0]}:{choice[1]}')
        return 0
    print(report(args.folder, pallas.KINDS), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
