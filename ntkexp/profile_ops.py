"""Where a jitted computation spends its time: device time per XLA operation.

The GPU benchmarks (``results/bench/``) say how fast a kernel is; to make it
faster one needs to know which of XLA's fused kernels take the time and what
each computes. This module runs a compiled function under
``jax.profiler.trace``, reads the trace back with ``jax.profiler.ProfileData``
and sums the duration of every event that names an XLA operation (``hlo_op``)
on the device's timeline (GPU: its ``XLA Ops`` line; CPU: the host threads that
run XLA's thunks). Each operation is described from the compiled HLO: its kind,
output shape and, for a fusion, the operations inside it.

Its command line profiles a WRN's empirical NTK by one or more of
``ntkexp.bench``'s methods (``--empirical-impl`` names: neural-tangents'
implementations, ``NTKEXP_STRUCTURED`` and its variants, the bounds and
parts), one after the other; the tables are also written as one CSV with
``--out`` (column ``target``), after each method. The fast infinite-width kernels have
``python -m ntkexp.fastconv.stage_bench --kernels ARCH``, built on
:func:`profile_ops`::

    python -m ntkexp.profile_ops --method NTKEXP_STRUCTURED WEIGHT_GRADIENTS \\
        --side 64 --n 16 --wrn-k 4

On a GPU, set ``JAX_DEFAULT_MATMUL_PRECISION=highest`` as the benchmarks do.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

import ntkexp  # noqa: F401  (neural-tangents on current JAX)
import jax
from jax.profiler import ProfileData

#: Lines of a GPU plane that hold one event per executed XLA operation.
DEVICE_OP_LINES = ('XLA Ops',)


def _event_op(event: Any) -> str | None:
    """The XLA operation an event belongs to, from its ``hlo_op`` stat."""
    for key, value in event.stats:
        if key == 'hlo_op':
            return str(value)
    return None


def _op_name(name: str) -> str:
    """``'%fusion.3 = f32[...] fusion(...)'`` or ``'fusion.3'`` -> ``'fusion.3'``."""
    return name.lstrip('%').split('=')[0].split(' ')[0]


def op_durations(profile: ProfileData) -> dict[str, tuple[int, float]]:
    """``{op: (count, total nanoseconds)}`` over the trace's device timeline.

    GPU planes (``/device:GPU:k``) count the events of their ``XLA Ops``
    lines (or, where a plane has none, its events that carry an ``hlo_op``
    stat); without a GPU plane, the host plane's events that carry an
    ``hlo_op`` stat (the CPU runtime's thunks).
    """
    totals: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    def add(op: str, event: Any) -> None:
        entry = totals[_op_name(op)]
        entry[0] += 1
        entry[1] += event.duration_ns

    def add_tagged(lines) -> None:  # the events that carry an hlo_op stat
        for line in lines:
            for event in line.events:
                op = _event_op(event)
                if op is not None:
                    add(op, event)

    device_planes = [p for p in profile.planes
                     if p.name.startswith('/device:GPU')]
    for plane in device_planes:
        lines = [line for line in plane.lines if line.name in DEVICE_OP_LINES]
        for line in lines:
            for event in line.events:
                add(event.name, event)
        if not lines:
            add_tagged(plane.lines)
    if not device_planes:
        for plane in profile.planes:
            if plane.name.startswith('/host:CPU'):
                add_tagged(plane.lines)
    return {op: (int(c), float(t)) for op, (c, t) in totals.items()}


_INSTRUCTION = re.compile(
    r'^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>.+?)\s+'
    r'(?P<opcode>[\w\-]+)\((?P<rest>.*)$')
_COMPUTATION = re.compile(r'^\s*(?:ENTRY\s+)?%?(?P<name>[\w.\-]+)\s.*\{\s*$')


def parse_hlo(text: str) -> tuple[dict, dict]:
    """Instructions and computations of an HLO module's text.

    Returns:
        ``(instructions, computations)``: ``{name: (shape, opcode, rest)}``
        over every computation, and ``{computation: [opcodes]}``.
    """
    instructions, computations, current = {}, {}, None
    for line in text.splitlines():
        match = _INSTRUCTION.match(line)
        if match and current is not None:
            instructions[match['name']] = (match['shape'], match['opcode'],
                                           match['rest'])
            computations[current].append(match['opcode'])
            continue
        match = _COMPUTATION.match(line)
        if match and '=' not in line.split('{')[0]:
            current = match['name']
            computations[current] = []
    return instructions, computations


def describe(op: str, instructions: dict, computations: dict) -> tuple[str, str, str]:
    """``(opcode, output shape, contents)`` of a compiled operation: for a
    fusion, its kind and the counts of the operations it fuses."""
    if op not in instructions:
        return '', '', ''
    shape, opcode, rest = instructions[op]
    contents = ''
    called = re.search(r'calls=%?([\w.\-]+)', rest)
    if called and called[1] in computations:
        counts = collections.Counter(
            c for c in computations[called[1]] if c != 'parameter')
        contents = ' '.join(f'{name}:{k}' for name, k in counts.most_common(8))
    kind = re.search(r'kind=(\w+)', rest)
    if kind:
        opcode = f'{opcode}/{kind[1]}'
    custom = re.search(r'custom_call_target="([^"]+)"', rest)
    if custom:
        contents = custom[1]
    return opcode, shape[:120], contents


def profile_ops(fn: Callable, args: Sequence[Any], repeats: int = 3,
                hlo: str | None = None) -> pd.DataFrame:
    """Device time per XLA operation of ``jax.jit(fn)(*args)``.

    Args:
        fn: the function; it is jitted and compiled before tracing.
        args: its arguments.
        repeats: calls traced after a warm-up (times are per call).
        hlo: a path to write the compiled (optimised) HLO to, if given.

    Returns:
        One row per operation, longest first: ``op``, ``calls`` (per
        traced call), ``us`` (microseconds per traced call), ``share`` of the
        operations' total, ``opcode``, ``shape``, ``contents``.
    """
    compiled = jax.jit(fn).lower(*args).compile()
    text = compiled.as_text()
    if hlo:
        with open(hlo, 'w', encoding='utf-8') as file:
            file.write(text)
    jax.block_until_ready(compiled(*args))
    # The trace (tens of MB a call) is read here and removed with its folder.
    with tempfile.TemporaryDirectory(prefix='ntkexp_profile_') as directory:
        with jax.profiler.trace(directory):
            for _ in range(repeats):
                jax.block_until_ready(compiled(*args))
        paths = glob.glob(os.path.join(directory, '**', '*.xplane.pb'),
                          recursive=True)
        if not paths:
            raise RuntimeError(
                f'jax.profiler wrote no trace under {directory}')
        durations = op_durations(ProfileData.from_file(paths[0]))
    instructions, computations = parse_hlo(text)
    rows = []
    for op, (count, total_ns) in durations.items():
        opcode, shape, contents = describe(op, instructions, computations)
        rows.append(dict(op=op, calls=count / repeats,
                         us=total_ns / repeats / 1e3, opcode=opcode,
                         shape=shape, contents=contents))
    frame = pd.DataFrame(rows, columns=['op', 'calls', 'us', 'opcode', 'shape',
                                        'contents'])
    total = frame['us'].sum()
    frame.insert(3, 'share', frame['us'] / total if total else np.nan)
    return frame.sort_values('us', ascending=False, ignore_index=True)


def _empirical_target(method: str, args: argparse.Namespace
                      ) -> tuple[Callable, tuple]:
    from ntkexp import bench  # pylint: disable=g-import-not-at-top
    apply_fn, x, params = bench.empirical_wrn(args.n, args.side, args.wrn_k)
    fn, _ = bench.empirical_method_fn(method, apply_fn)
    return fn, (x, params)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Prints (and with ``--out`` writes) the tables of empirical NTK
    methods, one after the other."""
    from ntkexp import bench  # pylint: disable=g-import-not-at-top
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--method', nargs='+', default=['NTKEXP_STRUCTURED'],
                        help='ntkexp.bench --empirical-impl names')
    parser.add_argument('--wrn-k', type=int, default=4)
    parser.add_argument('--side', type=int, default=32)
    parser.add_argument('--n', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--out', default=None, help='CSV path')
    args = parser.parse_args(argv)
    unknown = [m for m in args.method if m not in bench.EMPIRICAL_CHOICES]
    if unknown:
        raise SystemExit(f'--method {" ".join(unknown)}: expected one of '
                         + ' '.join(sorted(bench.EMPIRICAL_CHOICES)))
    device = jax.devices()[0]
    frames = []
    for method in args.method:
        fn, fn_args = _empirical_target(method, args)
        label = f'wrn-10-{args.wrn_k} {method}'
        frame = profile_ops(fn, fn_args, args.repeats)
        frame.insert(0, 'target', label)
        frame.insert(1, 'input', f'{args.n}x{args.side}x{args.side}x3')
        frame.insert(2, 'device', str(device.device_kind))
        print(f'{label}, {args.n} images {args.side}x{args.side}, '
              f'{device.device_kind}: {frame["us"].sum():.1f} us of device '
              'ops per call')
        with pd.option_context('display.width', 250,
                               'display.max_colwidth', 70):
            print(frame.drop(columns=['target', 'input', 'device'])
                  .head(args.top).to_string(
                      index=False, float_format=lambda v: f'{v:.4g}'))
        frames.append(frame)
        table = pd.concat(frames, ignore_index=True)
        if args.out:   # after each method: a run cut short keeps its tables
            os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                        exist_ok=True)
            table.to_csv(args.out, index=False)
            print('written:', args.out)
    return table


if __name__ == '__main__':
    main()
