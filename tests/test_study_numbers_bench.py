"""The measured figures of ``results/bench/README.md`` and ``docs/fastconv.md`` (throughputs,
speedups, us per pair, memory, relative differences, H100-hours, projections), recomputed
from the committed CSVs under ``results/bench/``, claim by claim as in ``test_readme_numbers``.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from readme_claims import (
    REPO, RESULTS, assert_readme_says, cifar10_hours, fixed, h100_timings, one,
    projected_speedups, projected_us, scientific, span, table, us_per_pair, where)

BENCH_README = RESULTS / 'bench' / 'README.md'
FASTCONV_DOC = REPO / 'docs' / 'fastconv.md'

GPU_CSV = 'bench_gpu_NVIDIA_H100_80GB_HBM3.csv'  # second session, `make bench`
SECOND_SESSION = 'fastconv_h100_n32.csv'  # second session, exact float32 products
CONV_NETS = (('cnn_gap', 'CNN-GAP (depth 3)'), ('myrtle5', 'Myrtle-5'), ('wrn', 'WRN-10-1'))
CPU_NETS = (('myrtle5', 'Myrtle-5'), ('cnn_gap', 'CNN-GAP (depth 3)'), ('wrn', 'WRN-10-1'))
EMPIRICAL_H100 = 'session14/empirical_{}_wrn10-4_64px_n16/' + GPU_CSV
MODEL_N32 = 'session15/xla_gpu_model_n32.csv'  # the H100 model of the XLA variants


# --- Formatting ---------------------------------------------------------------------------

def _x(value: float, digits: int = 1) -> str:
    return f'{fixed(value, digits)}x'


def _entries(value: float) -> str:
    """Entries/s to four significant figures with thousands separators (``38,620``)."""
    digits = 3 - math.floor(math.log10(value))
    return f'{float(fixed(value, digits)):,.0f}'


def _seconds(value: float) -> str:
    """Seconds as the tables write them: two decimals below 2 s, one above."""
    return fixed(value, 2 if value < 2 else 1)


def _same(values, digits: int) -> str:
    """The one figure that every value of ``values`` rounds to."""
    rounded = {fixed(value, digits) for value in values}
    assert len(rounded) == 1, rounded
    return rounded.pop()






# --- Tables -------------------------------------------------------------------------------

def _bench(path: str) -> pd.DataFrame:
    return table(f'bench/{path}')


def _methods(path: str, **columns) -> pd.DataFrame:
    """The rows of ``path`` that match ``columns``, indexed by method."""
    return where(_bench(path), **columns).set_index('method')




def _pallas_ratios(arch: str) -> pd.Series:
    """Each Pallas kind's entries/s over the XLA recursion's, same run (fourteenth session)."""
    rows = h100_timings(arch)
    kinds = rows[rows.index.str.startswith('fastconv_pallas_')]
    return kinds['entries_per_s'] / rows.loc['fastconv', 'entries_per_s']


def _empirical(run: str) -> pd.DataFrame:
    """The fourteenth session's WRN-10-4 empirical NTK, ``methods`` (call 1) or ``products``."""
    return _methods(EMPIRICAL_H100.format(run))


def _cpu_fastconv(session: str, dtype: str) -> pd.DataFrame:
    return _bench(f'{session}/fastconv_cpu_n4_{dtype}.csv')


def _speedup(frame: pd.DataFrame, arch: str, method: str = 'fastconv') -> float:
    return one(frame, 'speedup_vs_nt', arch=arch, method=method)


def _seconds_of(frame: pd.DataFrame, arch: str, method: str) -> float:
    return one(frame, 'seconds', arch=arch, method=method)


# --- results/bench/README.md: the second session (H100) -----------------------------------

def second_session_conv_kernels() -> str:
    rows = _bench(GPU_CSV)
    lines = []
    for arch, name in CONV_NETS:
        r = where(rows, arch=arch).set_index('method')
        nt, engine, fast = (r.loc[m] for m in ('nt_jit', 'ntkexp_engine',
                                                'ntkexp_fastconv_engine'))
        blocks = f'; blocks of {engine.block:.0f}' if arch == 'cnn_gap' else ''
        lines.append(
            f'| {name} | {nt.n} | {_entries(nt.entries_per_s)} | '
            f'{_entries(engine.entries_per_s)} (**{_x(engine.ratio_vs_nt_jit, 2)}**{blocks}) | '
            f'{_entries(fast.entries_per_s)} (**{_x(fast.ratio_vs_nt_jit, 2)}**) | '
            f'{scientific(engine.rel_diff)} / {scientific(fast.rel_diff)} (TF32) |')
    return '\n'.join(lines)


def second_session_dense_kernels() -> str:
    rows = _bench(GPU_CSV)

    def row(arch: str, name: str, host: str) -> str:
        r = where(rows, arch=arch).set_index('method')
        engine = r.loc['ntkexp_engine']
        assert engine.blocks == 1  # "one block"
        ratio = _x(engine.ratio_vs_nt_jit_host, 2)
        ratio = f'**{ratio}**' if engine.ratio_vs_nt_jit_host > 1 else ratio
        nt_jit = scientific(r.loc['nt_jit', 'entries_per_s'])
        return (f'| {name} | {engine.n:,} | {nt_jit} on device; '
                f'{scientific(r.loc["nt_jit_host", "entries_per_s"])} with the copy{host} | '
                f'{scientific(engine.entries_per_s)} ({ratio} of `nt_jit_host`; one block) | | '
                f'{engine.rel_diff:g} |')

    return row('fc', 'FC (3 layers)', ' to host') + '\n' + row('resnet', 'ResNet', '')


def second_session_memory() -> str:
    engine = where(_bench(GPU_CSV), method='ntkexp_engine')
    conv = engine[engine['arch'].isin([arch for arch, _ in CONV_NETS])]
    nt = where(_bench(SECOND_SESSION), method='nt')
    return (f"the budget allows {_same(conv['block'], 0)}-image blocks of neural-tangents' "
            f"kernel ({span(conv['compiled_bytes'] / 1e9, 1)} GB compiled), and these are "
            f"*faster* than one 32x32 `jit` call ({_same(conv['ratio_vs_nt_jit'], 1)}x), which "
            f"needs {span(nt['compiled_bytes'] / 1e9, 0)} GB.")


def second_session_fast_kernels() -> str:
    fast = where(_bench(GPU_CSV), method='ntkexp_fastconv_engine')['ratio_vs_nt_jit']
    exact = where(_bench(SECOND_SESSION), method='fastconv').set_index('arch')['rel_diff_vs_nt']
    return (f'{_x(fast.min())} to {_x(fast.max())} plain neural-tangents per GPU. With exact '
            'float32 products on both sides (`fastconv_h100_n32.csv`, two different image '
            f"sets) they agree with neural-tangents to {scientific(exact['cnn_gap'])} (CNN-GAP), "
            f"{scientific(exact['myrtle5'])} (Myrtle-5) and {scientific(exact['wrn'])} (WRN) "
            'relative.')


def second_session_empirical() -> str:
    rows = where(_bench(GPU_CSV), benchmark='empirical_ntk').set_index('method')
    jc, nvp, sd = (rows.loc[m] for m in ('JACOBIAN_CONTRACTION', 'NTK_VECTOR_PRODUCTS',
                                         'STRUCTURED_DERIVATIVES'))
    return (f'({jc.n} inputs, {fixed(jc.n_params / 1e6, 2)}M parameters): Jacobian contraction '
            f'{_entries(jc.entries_per_s)} entries/s, NTK-vector products '
            f'{_entries(nvp.entries_per_s)} ({_x(nvp.ratio_vs_jacobian_contraction, 2)}), '
            f'**structured derivatives {_entries(sd.entries_per_s)} '
            f'({_x(sd.ratio_vs_jacobian_contraction, 2)})**.')


# --- results/bench/README.md: the targets of issues 9 and 10 ------------------------------

def target_infinite_width() -> str:
    fast = where(_bench(GPU_CSV), method='ntkexp_fastconv_engine').set_index('arch')
    exact = where(_bench(SECOND_SESSION), method='fastconv').set_index('arch')['rel_diff_vs_nt']
    h100 = {arch: h100_timings(arch).loc['fastconv', 'speedup_vs_nt']
            for arch in ('cnn_gap', 'wrn')}
    return (f"fast kernels {_x(fast.loc['cnn_gap', 'ratio_vs_nt_jit'])} / "
            f"{_x(fast.loc['wrn', 'ratio_vs_nt_jit'])}, {scientific(exact['cnn_gap'])} / "
            f"{scientific(exact['wrn'])}; fourteenth session {_x(h100['cnn_gap'])} / "
            f"{_x(h100['wrn'])} (`session14/`)")


def target_structured() -> str:
    methods, products = _empirical('methods'), _empirical('products')
    ratio = 'ratio_vs_jacobian_contraction'
    ntkexp = [methods.loc['NTKEXP_STRUCTURED', ratio], products.loc['NTKEXP_STRUCTURED', ratio]]
    return (f"ntkexp's own (`NTKEXP_STRUCTURED`) **{_x(min(ntkexp), 2)}-{_x(max(ntkexp), 2)}**, "
            f"its weight-gradient bound {_x(products.loc['WEIGHT_GRADIENTS', ratio], 2)}, the "
            f"backward passes alone {_x(products.loc['COTANGENT_FLOOR', ratio], 2)}; "
            f"neural-tangents' {_x(methods.loc['STRUCTURED_DERIVATIVES', ratio], 2)} "
            '(`session14/`)')


def target_fast_conv() -> str:
    myrtle, gap, wrn = (h100_timings(arch).loc['fastconv']
                        for arch in ('myrtle5', 'cnn_gap', 'wrn'))
    second = where(_bench(SECOND_SESSION), method='fastconv').set_index('arch')['speedup_vs_nt']
    third = _bench('session3/fastconv_pallas_n32.csv')
    f32, f64 = _bench('session6/fastconv_cpu_n4.csv'), _cpu_fastconv('session8', 'float64')
    return (f'fourteenth session, H100: **{_x(myrtle.speedup_vs_nt)} / {_x(gap.speedup_vs_nt)}** '
            f'(WRN-10-1 {_x(wrn.speedup_vs_nt)}), {scientific(myrtle.rel_diff_vs_nt)} / '
            f'{scientific(gap.rel_diff_vs_nt)}; no Pallas kind faster than XLA (`session14/`). '
            'Before: '
            f"second session {_x(second['myrtle5'])} / {_x(second['cnn_gap'])}; third "
            f"{_x(_speedup(third, 'myrtle5'), 2)} / {_x(_speedup(third, 'cnn_gap'), 2)} (XLA), "
            f"{_x(_speedup(third, 'myrtle5', 'fastconv_pallas_w4'), 2)} / "
            f"{_x(_speedup(third, 'cnn_gap', 'fastconv_pallas_w4'), 2)} (Pallas rows); on the "
            f"CPU {_x(_speedup(f32, 'myrtle5'))} / {_x(_speedup(f32, 'cnn_gap'))} in float32 "
            f"(`session6/`), {_x(_speedup(f64, 'myrtle5'))} / {_x(_speedup(f64, 'cnn_gap'))} "
            'in float64 (`session8/`)')


def target_hours() -> str:
    myrtle = h100_timings('myrtle5')
    steps = _methods('session14/fastconv_myrtle5_steps_h100_n32.csv')
    second = one(_bench(SECOND_SESSION), 'entries_per_s', arch='myrtle5', method='fastconv')
    return (f"{fixed(cifar10_hours(myrtle.loc['fastconv', 'entries_per_s']), 1)} h projected "
            f"({fixed(cifar10_hours(steps.loc['fastconv_steps_2p28', 'entries_per_s']), 1)} h with "
            f"steps of 2^28 entries; plain nt "
            f"{fixed(cifar10_hours(myrtle.loc['nt', 'entries_per_s']), 0)}"
            f' h), fourteenth session; second session {fixed(cifar10_hours(second), 1)} h')


# --- results/bench/README.md: later sessions ----------------------------------------------

def session24_dense() -> str:
    rows = _bench('session24/bench_cpu_cpu_float64.csv')
    lines = []
    for arch, name, digits in (('fc', 'FC, 3 hidden layers', 2),
                               ('fc_deep', 'FC, 32 hidden layers', 1),
                               ('resnet', 'ResNet (dense), 4 blocks', 1)):
        r = where(rows, arch=arch).set_index('method')
        nt, engine, fast = (r.loc[m] for m in ('nt_jit', 'ntkexp_engine',
                                                'ntkexp_fastconv_engine'))
        lines.append(
            f'| {name} | {nt.n} | {scientific(nt.entries_per_s)} | {_seconds(nt.first_call_s)} s | '
            f'{_seconds(engine.plan_s)} s | {scientific(fast.entries_per_s, digits)} '
            f'(**{_x(fast.ratio_vs_nt_jit, 2)}**) | {_seconds(fast.first_call_s)} s; '
            f'{_seconds(fast.plan_s)} s |')
    rel = ', '.join(scientific(v) for v in where(rows, method='ntkexp_fastconv_engine')['rel_diff'])
    return '\n'.join(lines) + f'\n\n`rel_diff` ({rel})'


def session14_fast_kernels() -> str:
    fast = {arch: h100_timings(arch).loc['fastconv'] for arch, _ in CONV_NETS}
    second = where(_bench(SECOND_SESSION), method='fastconv').set_index('arch')['entries_per_s']
    gained = [fast[arch].entries_per_s / second[arch] for arch in fast]
    f64 = _methods('session14/fastconv_myrtle5_h100_f64_n8.csv').loc['fastconv', 'speedup_vs_nt']
    return (f"Myrtle-5 **{_x(fast['myrtle5'].speedup_vs_nt)}** plain neural-tangents "
            f"({_entries(fast['myrtle5'].entries_per_s)} entries/s), CNN-GAP "
            f"**{_x(fast['cnn_gap'].speedup_vs_nt)}**, WRN-10-1 **{_x(fast['wrn'].speedup_vs_nt)}**"
            f'; {span(gained, 1)}x faster than in the second session. Full CIFAR-10 Myrtle-5 NTK: '
            f"{fixed(cifar10_hours(fast['myrtle5'].entries_per_s), 1)} H100-hours (was "
            f"{fixed(cifar10_hours(second['myrtle5']), 1)}). Float64 Myrtle-5 {_x(f64)}.")


def session14_pallas() -> str:
    myrtle = _pallas_ratios('myrtle5')
    assert myrtle.idxmax() == 'fastconv_pallas_diagonal_w8'
    patches = pd.concat([_pallas_ratios(arch) for arch in ('myrtle5', 'cnn_gap')])
    patches = patches[patches.index.str.contains('patches')]
    return ('exact, none faster than the XLA recursion (best: `diagonal` at 8 warps, '
            f"{_x(myrtle.max(), 2)} of it); those computing the first layer's product in the "
            f'kernel {span(1 / patches, 0)}x slower.')


def session14_empirical() -> str:
    methods, products = _empirical('methods'), _empirical('products')
    ratio = 'ratio_vs_jacobian_contraction'
    ntkexp = [methods.loc['NTKEXP_STRUCTURED', ratio], products.loc['NTKEXP_STRUCTURED', ratio]]
    share = 100 * products.loc['NTKEXP_STRUCTURED', ratio] / products.loc['WEIGHT_GRADIENTS',
                                                                          ratio]
    return (f"ntkexp's structured NTK {_x(min(ntkexp), 2)}-{_x(max(ntkexp), 2)} Jacobian "
            f'contraction, {fixed(share, 0)}% of the speed of the bound that forms every weight '
            f"gradient ({_x(products.loc['WEIGHT_GRADIENTS', ratio], 2)}); the backward passes "
            f"alone {_x(products.loc['COTANGENT_FLOOR', ratio], 2)}. Its products as TF32 x3 are "
            f"no faster ({_x(products.loc['NTKEXP_STRUCTURED_TF32X3', ratio], 2)}).")


def session11_bounds() -> str:
    path = 'session11/empirical_bounds_wrn10-4_n{}/bench_cpu_cpu.csv'
    ratio = 'ratio_vs_jacobian_contraction'
    n16, n32 = (_methods(path.format(n))[ratio] for n in (16, 32))
    below = 100 * (1 - n32['NTKEXP_STRUCTURED'] / n32['WEIGHT_GRADIENTS'])
    return (f"at 16 images {_x(n16['NTKEXP_STRUCTURED'], 2)} Jacobian contraction, above the "
            f"weight-gradient bound ({_x(n16['WEIGHT_GRADIENTS'], 2)}) because the 8x8 stage is "
            'contracted by position pairs; the floor of the backward passes alone is '
            f"{_x(n16['COTANGENT_FLOOR'], 2)}. At 32 images {_x(n32['NTKEXP_STRUCTURED'], 2)}, "
            f'within {fixed(below, 0)}% of the weight-gradient bound.')


def session9_activations() -> str:
    rows = where(_bench('session9/fastconv_cpu_n4_float64_activations.csv'), method='fastconv')
    resnet = where(_bench('session9/fastconv_cpu_n4_float64_resnet_image.csv'),
                   method='fastconv').set_index('activation')
    myrtle, gap, wrn = (span(where(rows, arch=arch)['speedup_vs_nt'], 1) for arch, _ in CPU_NETS)
    worst = max(rows['rel_diff_vs_nt'].max(), resnet['rel_diff_vs_nt'].max())
    return (f'they run {myrtle}x (Myrtle-5), {gap}x (CNN-GAP) and {wrn}x (WRN-10-1) plain '
            f'neural-tangents, within {scientific(worst)} of it; the convolutional ResNet of the '
            'ResNTK papers (`model=resnet layout=image`), new on the fast path too, '
            f"{_x(resnet.loc['relu', 'speedup_vs_nt'])} (ReLU) and "
            f"{_x(resnet.loc['erf', 'speedup_vs_nt'])} (erf)")


def session8_packing() -> str:
    f64 = _cpu_fastconv('session8', 'float64')
    gain = _seconds_of(f64, 'cnn_gap', 'fastconv_pack_relu_off') / _seconds_of(
        f64, 'cnn_gap', 'fastconv')
    engine = [one(_bench(f'{s}/bench_cpu_cpu_float64.csv'), 'ratio_vs_nt_jit', arch='cnn_gap',
                  method='ntkexp_fastconv_engine') for s in ('session8', 'session7')]
    return (f'the 32x32 CNN-GAP kernel got {_x(gain)} faster in float64 '
            f"({_x(_speedup(f64, 'cnn_gap'))} plain neural-tangents, up from "
            f"{_x(_speedup(f64, 'cnn_gap', 'fastconv_pack_relu_off'))} in the same run; "
            f"`make bench`'s engine {_x(engine[0])}, up from {_x(engine[1])} in the seventh "
            f"session). Myrtle-5 and WRN-10-1 are unchanged ({_x(_speedup(f64, 'myrtle5'))} and "
            f"{_x(_speedup(f64, 'wrn'))} in float64 in this run)")


def session6_steps() -> str:
    rows = _bench('session6/fastconv_cpu_n4.csv')
    nets = [arch for arch, _ in CPU_NETS]

    def ratios(method: str) -> str:
        return ' / '.join(_x(_speedup(rows, arch, method)) for arch in nets)

    return (f'Myrtle-5, CNN-GAP and WRN-10-1 reach {ratios("fastconv")} plain neural-tangents, '
            f'against {ratios("fastconv_large_steps")} with the previous large steps in the '
            'same run.')


BENCH_CLAIMS = [second_session_conv_kernels, second_session_dense_kernels,
                second_session_memory, second_session_fast_kernels, second_session_empirical,
                target_infinite_width, target_structured, target_fast_conv, target_hours,
                session24_dense, session14_fast_kernels, session14_pallas, session14_empirical,
                session11_bounds, session9_activations, session8_packing, session6_steps]


# --- docs/fastconv.md ---------------------------------------------------------------------

def summary_cpu() -> str:
    f64 = _cpu_fastconv('session8', 'float64')
    myrtle, gap, wrn = (_x(_speedup(f64, arch)) for arch, _ in CPU_NETS)
    return (f'**{myrtle}** (Myrtle-5), **{gap}** (CNN-GAP) and **{wrn}** (WRN-10-1) plain '
            'neural-tangents in float64')


def summary_targets() -> str:
    pallas = pd.concat([_pallas_ratios(arch) for arch in ('myrtle5', 'cnn_gap')])
    myrtle, gap = h100_timings('myrtle5'), h100_timings('cnn_gap')
    structured = _empirical('products').loc['NTKEXP_STRUCTURED', 'ratio_vs_jacobian_contraction']
    return (f'(fourteenth session: {_x(pallas.min(), 2)}-{_x(pallas.max(), 2)} of it), so `auto` '
            'keeps XLA. Still short of the targets: 10x for the fast kernels '
            f"({_x(myrtle.loc['fastconv', 'speedup_vs_nt'])} / "
            f"{_x(gap.loc['fastconv', 'speedup_vs_nt'])}), 3x for structured derivatives "
            f'({_x(structured)}), and under 8 H100-hours for the full CIFAR-10 Myrtle-5 NTK '
            f"({fixed(cifar10_hours(myrtle.loc['fastconv', 'entries_per_s']), 1)} h projected "
            "for all "
            '60,000 images; plain neural-tangents '
            f"{fixed(cifar10_hours(myrtle.loc['nt', 'entries_per_s']), 0)} h)")


def activations_table() -> str:
    rows = _bench('session9/fastconv_cpu_n4_float64_activations.csv')
    activations = ('relu', 'abs', 'erf', 'gelu', 'sin')
    lines = []
    for arch, name in CPU_NETS:
        nt = where(rows, arch=arch, method='nt').set_index('activation')
        fast = where(rows, arch=arch, method='fastconv').set_index('activation')
        lines.append(f'| {name}, nt (s) | '
                     + ' | '.join(fixed(nt.loc[a, 'seconds'], 2) for a in activations) + ' | |')
        lines.append(f"| {name.split(' (')[0]}, fastconv (s, ratio) | "
                     + ' | '.join(f"{fixed(fast.loc[a, 'seconds'], 2)} "
                                  f"({_x(fast.loc[a, 'speedup_vs_nt'])})" for a in activations)
                     + f" | {scientific(fast['rel_diff_vs_nt'].max())} |")
    return '\n'.join(lines)


def cpu_float32_accuracy() -> str:
    rel = where(_bench('session6/fastconv_cpu_n4.csv'), dtype='float32')
    rel = rel[rel['method'] != 'nt']['rel_diff_vs_nt']
    return ('In the 32x32 benchmark below (cross blocks), float32 differences are '
            f'{scientific(rel.min())} to {scientific(rel.max())}.')


def cpu_steps_table() -> str:
    rows = _bench('session6/fastconv_cpu_n4.csv')
    variants = ('session3', 'large_steps', 'materialize_off', 'full_self_covariance')
    lines = []
    for arch, name in CPU_NETS:
        r = where(rows, arch=arch).set_index('method')
        cells = [f"{fixed(r.loc[f'fastconv_{v}', 'seconds'], 2)} "
                 f"({_x(r.loc[f'fastconv_{v}', 'speedup_vs_nt'])})" for v in variants]
        fast = r.loc['fastconv']
        lines.append(f"| {name} | {fixed(r.loc['nt', 'seconds'], 2)} | {' | '.join(cells)} | "
                     f'**{fixed(fast.seconds, 2)} ({_x(fast.speedup_vs_nt)})** | '
                     f'{scientific(fast.rel_diff_vs_nt)} |')
    return '\n'.join(lines)


def cpu_steps_memory() -> str:
    rows = _bench('session6/fastconv_cpu_n4.csv')
    fast = where(rows, method='fastconv').set_index('arch')['compiled_bytes']
    nt = where(rows, method='nt').set_index('arch')['compiled_bytes']
    session4 = _bench('session4/fastconv_cpu_n4.csv')
    before = ', '.join(_x(_speedup(session4, arch)) for arch in ('myrtle5', 'cnn_gap'))
    tens = '-'.join(f'{float(fixed(v / 1e6, -1)):.0f}' for v in (nt.min(), nt.max()))
    return (f'The compiled sizes of the default blocks are {span(fast / 1e6, 0)} MB, '
            f"{span(fast / nt, 2)}x neural-tangents' ({tens} MB). In the fourth "
            f'session, with large steps, the same command gave {before} and '
            f"{_x(_speedup(session4, 'wrn'))} (`results/bench/session4/`).")


def float64_table() -> str:
    f64, f32 = _cpu_fastconv('session7', 'float64'), _cpu_fastconv('session7', 'float32')
    lines = []
    for arch, name in CPU_NETS:
        fast = where(f64, arch=arch, method='fastconv').iloc[0]
        lines.append(f"| {name} | {fixed(_seconds_of(f64, arch, 'nt'), 2)} | "
                     f'{fixed(fast.seconds, 2)} (**{_x(fast.speedup_vs_nt)}**) | '
                     f"{fixed(_seconds_of(f32, arch, 'fastconv'), 2)} | "
                     f'{scientific(fast.rel_diff_vs_nt)} |')
    return '\n'.join(lines)


def packed_table() -> str:
    f64, f32 = _cpu_fastconv('session8', 'float64'), _cpu_fastconv('session8', 'float32')

    def cell(frame: pd.DataFrame, arch: str, method: str, bold: bool = False) -> str:
        ratio = _x(_speedup(frame, arch, method))
        ratio = f'**{ratio}**' if bold else ratio
        return f'{fixed(_seconds_of(frame, arch, method), 2)} ({ratio})'

    lines = []
    for arch, name in CPU_NETS:
        lines.append(
            f"| {name} | {fixed(_seconds_of(f64, arch, 'nt'), 2)} | "
            f"{cell(f64, arch, 'fastconv', bold=True)} | "
            f"{cell(f64, arch, 'fastconv_pack_relu_off')} | "
            f"{fixed(_seconds_of(f32, arch, 'nt'), 2)} | {cell(f32, arch, 'fastconv')} | "
            f"{cell(f32, arch, 'fastconv_pack_relu_off')} |")
    return '\n'.join(lines)


def gpu_table() -> str:
    second = where(_bench(SECOND_SESSION), method='fastconv').set_index('arch')
    lines = []
    for arch, name in CONV_NETS:
        rows = h100_timings(arch)
        nt, fast = rows.loc['nt'], rows.loc['fastconv']
        lines.append(
            f'| {name} | {_entries(nt.entries_per_s)} | {_entries(fast.entries_per_s)} | '
            f'{_x(fast.speedup_vs_nt)} | {scientific(fast.rel_diff_vs_nt)} | '
            f'{fixed(cifar10_hours(fast.entries_per_s), 1)} '
            f'(nt {fixed(cifar10_hours(nt.entries_per_s), 0)}) | '
            f"{_x(second.loc[arch, 'speedup_vs_nt'])}, "
            f"{fixed(cifar10_hours(second.loc[arch, 'entries_per_s']), 1)} h |")
    f64 = _methods('session14/fastconv_myrtle5_h100_f64_n8.csv')
    nt, fast = f64.loc['nt'], f64.loc['fastconv']
    first = _methods('fastconv_h100_f64.csv').loc['fastconv', 'speedup_vs_nt']
    lines.append(
        f'| Myrtle-5, float64, {fast.n} images | {_entries(nt.entries_per_s)} | '
        f'{_entries(fast.entries_per_s)} | {_x(fast.speedup_vs_nt)} | '
        f'{scientific(fast.rel_diff_vs_nt)} | {fixed(cifar10_hours(fast.entries_per_s), 1)} '
        f'(nt {fixed(cifar10_hours(nt.entries_per_s), 0)}) | {_x(first)} (first session) |')
    return '\n'.join(lines)


def gpu_steps() -> str:
    pallas = h100_timings('myrtle5')['speedup_vs_nt']
    steps = _methods('session14/fastconv_myrtle5_steps_h100_n32.csv')
    gap, wrn = (_methods('session14/fastconv_cnn_gap_wrn_h100_n32.csv', arch=arch)
                for arch in ('cnn_gap', 'wrn'))
    small = ' / '.join(_x(v) for v in (pallas['fastconv_steps_2p20'],
                                       pallas['fastconv_steps_2p22'],
                                       steps.loc['fastconv_steps_2p24', 'speedup_vs_nt']))
    memory = (steps.loc['fastconv_steps_2p28', 'compiled_bytes']
              / steps.loc['fastconv', 'compiled_bytes'])
    return (f'(2^20 / 2^22 / 2^24: {small} for Myrtle-5; 2^28: '
            f"{_x(steps.loc['fastconv_steps_2p28', 'speedup_vs_nt'])} for Myrtle-5, "
            f"{_x(gap.loc['fastconv_steps_2p28', 'speedup_vs_nt'])} CNN-GAP, but "
            f"{_x(wrn.loc['fastconv_steps_2p28', 'speedup_vs_nt'])} WRN-10-1 and "
            f'{fixed(memory, 0)}x the memory), padded inputs and convolution outputs not '
            f"materialised ({_x(steps.loc['fastconv_materialize_on', 'speedup_vs_nt'])} / "
            f"{_x(steps.loc['fastconv_materialize_conv', 'speedup_vs_nt'])} with)")


def pallas_kinds_table() -> str:
    myrtle, gap = h100_timings('myrtle5'), h100_timings('cnn_gap')

    def ratio(rows: pd.DataFrame, kind: str, warps: int) -> str | None:
        method = f'fastconv_pallas_{kind}_w{warps}'
        return _x(rows.loc[method, 'speedup_vs_nt']) if method in rows.index else None

    xla = [_x(rows.loc['fastconv', 'speedup_vs_nt']) for rows in (myrtle, gap)]
    lines = [f'ratio to neural-tangents, XLA recursion {xla[0]} (Myrtle-5) / {xla[1]} (CNN-GAP):',
             '', '| kind | Myrtle-5, 4 / 8 warps | CNN-GAP, 4 warps |', '|---|---|---|']
    for kind in ('diagonal', 'diagonal_relu_in', 'diagonal_patches', 'diagonal_patches_tf32x3'):
        warps = [ratio(myrtle, kind, w) or '(not reached)' for w in (4, 8)]
        myrtle_cell = ('(not reached)' if warps == ['(not reached)'] * 2
                       else ' / '.join(warps))
        lines.append(f'| `{kind}` | {myrtle_cell} | {ratio(gap, kind, 4) or ""} |')
    return '\n'.join(lines)


def third_session_table() -> str:
    rows = _bench('session3/fastconv_pallas_n32.csv')

    def cell(arch: str, method: str) -> str:
        entries = one(rows, 'entries_per_s', arch=arch, method=method)
        return f'{_entries(entries)} ({_x(_speedup(rows, arch, method), 2)})'

    return (f"| Myrtle-5 kernel, n = 32 (entries/s; ratio to plain nt) | "
            f"{cell('myrtle5', 'fastconv')} | {cell('myrtle5', 'fastconv_pallas_w4')} |\n"
            f"| CNN-GAP kernel, n = 32 | {cell('cnn_gap', 'fastconv')} | "
            f"{cell('cnn_gap', 'fastconv_pallas_w4')} |")


def model_variants_table() -> str:
    """The session-15 model against the session-14 timings of the same variants."""
    model = _bench(MODEL_N32)
    steps = _methods('session14/fastconv_myrtle5_steps_h100_n32.csv')['entries_per_s']
    measured = h100_timings('myrtle5').loc['fastconv', 'entries_per_s']
    labels = {'materialize_on': 'padded inputs materialised (`materialize_on`)',
              'materialize_conv': 'convolution outputs materialised (`materialize_conv`)',
              'separate_ntk': '`separate_ntk`', 'padded_first': '`padded_first`',
              'separate_padded': '`separate_padded`'}

    def cell(arch: str, variant: str) -> str:
        us = one(model, 'model_us', arch=arch, variant=variant)
        if variant == 'default':
            return fixed(us, 2)
        if arch == 'wrn' and variant in ('padded_first', 'separate_padded'):
            return '(not applicable)'
        change = fixed(100 * (us / one(model, 'model_us', arch=arch, variant='default') - 1), 0)
        change = change if change.startswith('-') or change == '0' else f'+{change}'
        text = f'{fixed(us, 2)} ({change}%)'
        return f'**{text}**' if variant == 'separate_padded' else text

    archs = ('myrtle5', 'cnn_gap', 'wrn')
    lines = [f"| default | {' | '.join(cell(a, 'default') for a in archs)} | "
             f'{fixed(us_per_pair(measured), 0)} us ({_entries(measured)} entries/s) |']
    for variant, label in labels.items():
        timed = f'fastconv_{variant}'
        slower = (f'+{fixed(100 * (steps["fastconv"] / steps[timed] - 1), 0)}%'
                  if timed in steps.index else 'owed')
        lines.append(f"| {label} | {' | '.join(cell(a, variant) for a in archs)} | {slower} |")
    return '\n'.join(lines)


def model_against_device() -> str:
    model = where(_bench(MODEL_N32), variant='default').set_index('arch')
    measured = {arch: us_per_pair(h100_timings(arch).loc['fastconv', 'entries_per_s'])
                for arch, _ in CONV_NETS}
    factors = [measured[arch] / model.loc[arch, 'model_us'] for arch in measured]

    def modelled(arch: str) -> str:
        return fixed(model.loc[arch, 'model_us'], 1)

    return (f"gives {modelled('myrtle5')} us per pair for Myrtle-5 (the H100 measured "
            f"{fixed(measured['myrtle5'], 0)}), {modelled('cnn_gap')} for CNN-GAP "
            f"({fixed(measured['cnn_gap'], 1)}) and {modelled('wrn')} for WRN-10-1 "
            f"({fixed(measured['wrn'], 1)}), a steady factor {span(factors, 1)} below the device")


def warps_projection() -> str:
    """Session 19: the candidates at 8 warps, scaled by the timed ``diagonal`` program's ratios
    to its own model (``model_us``, ``serial_us``), against plain neural-tangents."""
    reference = _bench('session19/xla_gpu_model_warps_diagonal_myrtle5.csv')
    reference = reference[reference['variant'].str.endswith('_w8')].iloc[0]
    masked = where(_bench('session19/xla_gpu_model_default_warps_masked.csv'),
                   arch='myrtle5').iloc[0]
    tail = _bench('session19/xla_gpu_model_default_warps_masked_tail_cnn_gap.csv').iloc[0]

    def ratios(candidate: pd.Series, arch: str) -> str:
        return f'{span(projected_speedups(candidate, reference, arch), 1)}x'

    return (f'The model then gives Myrtle-5 masked {fixed(masked.model_us, 2)} / '
            f'{fixed(masked.serial_us, 2)} us per pair (`model_us` / `serial_us`) and CNN-GAP '
            f'with the tail {fixed(tail.model_us, 2)} / {fixed(tail.serial_us, 2)}; scaled by '
            f"the timed program's ratios at 8 warps, {ratios(masked, 'myrtle5')} and "
            f"{ratios(tail, 'cnn_gap')} plain neural-tangents")


def loops_projection() -> str:
    """Session 18: the model with loops counted (4 warps), scaled by the timed ``diagonal``
    program's ratios to its own model, against plain neural-tangents (unrounded timings)."""
    reference = _bench('session18/xla_gpu_model_trips_diagonal_myrtle5.csv').iloc[0]

    def candidate(path: str, arch: str) -> pd.Series:
        return where(_bench(f'session18/xla_gpu_model_trips_{path}.csv'), arch=arch).iloc[0]

    def speedups(path: str, arch: str) -> str:
        return f'{span(projected_speedups(candidate(path, arch), reference, arch), 1)}x'

    def hours(path: str) -> str:
        us = projected_us(candidate(path, 'myrtle5'), reference)
        return span([cifar10_hours(us_per_pair(u)) for u in us], 1)

    return (f"- Myrtle-5 masked: **{speedups('masked', 'myrtle5')}** plain neural-tangents, "
            f"{hours('masked')} H100-hours for CIFAR-10. `diagonal_first` projects to "
            f"{speedups('first_myrtle5', 'myrtle5')} and {hours('first_myrtle5')} hours. "
            f"- CNN-GAP: **{speedups('masked_tail_cnn_gap', 'cnn_gap')}** with the tail, "
            f"{speedups('masked', 'cnn_gap')} masked, {speedups('first_cnn_gap', 'cnn_gap')} "
            '`diagonal_first`.')


def warps_timed() -> str:
    myrtle = h100_timings('myrtle5')
    w4, w8 = (myrtle.loc[f'fastconv_pallas_diagonal_w{w}'] for w in (4, 8))
    less = 100 * (1 - w4.entries_per_s / w8.entries_per_s)
    return (f'Myrtle-5 with the Pallas `diagonal` steps ran in {fixed(less, 0)}% less time at 8 '
            f'warps per program than at 4 ({_x(w8.speedup_vs_nt, 2)} against '
            f'{_x(w4.speedup_vs_nt, 2)} plain neural-tangents)')


DOC_CLAIMS = [summary_cpu, summary_targets, activations_table, cpu_float32_accuracy,
              cpu_steps_table, cpu_steps_memory, float64_table, packed_table, gpu_table,
              gpu_steps, pallas_kinds_table, third_session_table, model_variants_table,
              model_against_device, loops_projection, warps_projection, warps_timed]


def test_formats():
    assert scientific(3.0e-7) == '3.0e-7' and scientific(8.734e9) == '8.7e9'
    assert scientific(9.96e-5) == '1.0e-4'
    assert _entries(38619.0) == '38,620' and _entries(3783.5) == '3,784'
    assert _seconds(0.3217) == '0.32' and _seconds(3.139) == '3.1'


@pytest.mark.parametrize('claim', BENCH_CLAIMS, ids=lambda claim: claim.__name__)
def test_bench_readme_states_what_the_csvs_give(claim):
    assert_readme_says(BENCH_README, claim())


@pytest.mark.parametrize('claim', DOC_CLAIMS, ids=lambda claim: claim.__name__)
def test_fastconv_doc_states_what_the_csvs_give(claim):
    assert_readme_says(FASTCONV_DOC, claim())
