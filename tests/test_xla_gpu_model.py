"""ntkexp.xla_gpu_model: reading an XLA:GPU dump into per-kernel rows.

The dump below is a trimmed copy of what XLA writes for a two-kernel program
(names, shapes and launch lines in its formats); the compilation itself needs
JAX's CUDA plugin and runs only where it is installed.
"""

import dataclasses
import importlib.util
import stat

import pytest

from ntkexp import xla_gpu_model

#: The real one: tests replace it (``no_ptxas``, ``fake_ptxas``).
FIND_PTXAS = xla_gpu_model.find_ptxas

HLO = """\
HloModule jit_f, is_scheduled=true

%fused_sine (param_0: f32[256,1024]) -> f32[256,1024] {
  %param_0 = f32[256,1024]{1,0} parameter(0)
  ROOT %sine.0 = f32[256,1024]{1,0} sine(%param_0)
}

%fused_reduce (param_0.1: f32[256,1024]) -> f32[256] {
  %param_0.1 = f32[256,1024]{1,0} parameter(0)
  %constant_0 = f32[] constant(0)
  ROOT %reduce.0 = f32[256]{0} reduce(%param_0.1, %constant_0), dimensions={1}
}

ENTRY %main.4 (x.1: f32[256,1024], y.1: c64[16]) -> (f32[256], c64[16]) {
  %x.1 = f32[256,1024]{1,0} parameter(0), metadata={op_name="x"}
  %y.1 = c64[16]{0} parameter(1)
  %loop_sine_fusion = f32[256,1024]{1,0} fusion(%x.1), kind=kLoop, calls=%fused_sine, metadata={op_name="jit(f)/sin"}
  %input_reduce_fusion.1 = f32[256]{0} fusion(%loop_sine_fusion), kind=kInput, calls=%fused_reduce
  ROOT %tuple = (f32[256]{0}, c64[16]{0}) tuple(%input_reduce_fusion.1, %y.1)
}
"""

THUNKS = """\
001: kCustomKernel [source       | next=002 (1)] loop_sine_fusion grid: [512, 1, 1] threads: [128, 1, 1]  shared_memory: 0 bytes
002: kCustomKernel [prev=001 (1) | sink        ] input_reduce_fusion_1 grid: [8, 2, 1] threads: [256, 1, 1]  shared_memory: 0 bytes
"""

PTX = """\
.version 8.4
.target sm_90a

.visible .entry loop_sine_fusion(
\t.param .u64 .ptr .align 16 loop_sine_fusion_param_0
)
.reqntid 128, 1, 1
{
\t.reg .b32 \t%r<4>;
\t.reg .f32 \t%f<3>;
\tld.param.u64 \t%rd1, [loop_sine_fusion_param_0];
\tmov.u32 \t%r1, %ctaid.x;
\tsin.approx.f32 \t%f2, %f1;
\t@%p1 bra \t$L__BB0_2;
\tst.global.f32 \t[%rd1], %f2;
$L__BB0_2:
\tret;

}
"""


LOOP_PTX = PTX.replace('loop_sine_fusion', 'walk').replace(
    '\tmov.u32 \t%r1, %ctaid.x;', '$L__BB1_1:\n\tmov.u32 \t%r1, %ctaid.x;'
).replace('bra \t$L__BB0_2;', 'bra \t$L__BB1_1;')


@pytest.fixture(autouse=True)
def no_ptxas(monkeypatch):
    """The trimmed PTX above is no module ptxas assembles: the tables read
    it without one, unless a test installs one (``fake_ptxas``)."""
    monkeypatch.setattr(xla_gpu_model, 'find_ptxas', lambda: None)


#: What ``ptxas -v`` (CUDA 13.0) reports for a module of two kernels.
PTXAS_REPORT = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'loop_sine_fusion' for 'sm_90a'
ptxas info    : Function properties for loop_sine_fusion
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers
ptxas info    : Compile time = 20.595 ms
ptxas info    : Compiling entry function 'input_reduce_fusion_1' for 'sm_90a'
ptxas info    : Function properties for input_reduce_fusion_1
    8 bytes stack frame, 12 bytes spill stores, 20 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 4096 bytes smem, 384 bytes cmem[0]
"""


def fake_ptxas(tmp_path, monkeypatch, report=PTXAS_REPORT, status=0):
    """A ``ptxas`` that prints ``report`` (to stderr, as ptxas does) and
    exits with ``status``; it records its arguments in ``args.txt``."""
    script = tmp_path / 'ptxas'
    script.write_text('#!/bin/sh\n'
                      f'echo "$@" > {tmp_path / "args.txt"}\n'
                      f"cat >&2 <<'EOF'\n{report}EOF\n"
                      f'exit {status}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(xla_gpu_model, 'find_ptxas', lambda: str(script))
    return script


def test_resident_warps_follow_the_occupancy_rules():
    """Warps an H100 SM holds: registers rounded up per warp to 256, then
    the least of the register file, 64 warps, 32 blocks and shared memory
    (1 KiB kept per block)."""
    warps = xla_gpu_model.resident_warps
    # 255 registers x 32 lanes = 8160 -> 8192 per warp; 4 warps a block
    # take 32768: two blocks fit the 65536 registers.
    assert warps(255, 128) == 8
    assert warps(168, 128) == 12   # 5376 per warp exactly: 3 blocks
    assert warps(114, 256) == 16   # 3648 -> 3840 per warp: 2 blocks of 8
    assert warps(64, 128) == 32    # 8 blocks of 4
    assert warps(16, 1024) == 64   # two blocks of 32 warps: the warp limit
    assert warps(16, 32) == 32     # 32 one-warp blocks: the block limit
    # 100000 + 1024 bytes of shared memory a block: 2 blocks in 233472.
    assert warps(32, 128, 100_000) == 8
    assert warps(32, 128, 233472 - 1024) == 4


def test_parse_ptxas_reads_registers_spills_and_shared_memory():
    assert xla_gpu_model.parse_ptxas(PTXAS_REPORT) == {
        'loop_sine_fusion': (255, 0, 0),
        'input_reduce_fusion_1': (40, 32, 4096)}


def test_kernel_table_assembles_the_ptx_for_registers(tmp_path, monkeypatch):
    """With a ptxas, each row carries its kernel's registers, spills and
    shared memory (the launch's dynamic plus the static), so its occupancy;
    the PTX is assembled for its own target."""
    dump = _dump(tmp_path / 'dump')
    (dump / 'module_0001.jit_f.thunk_sequence.txt').write_text(
        THUNKS.replace('[256, 1, 1]  shared_memory: 0', '[256, 1, 1]  '
                       'shared_memory: 8192'))
    fake_ptxas(tmp_path, monkeypatch)
    sine, reduce = xla_gpu_model.kernel_table(dump)
    assert '-arch=sm_90a' in (tmp_path / 'args.txt').read_text()
    assert (sine.registers, sine.spill_bytes, sine.block_threads,
            sine.shared_bytes) == (255, 0, 128, 0)
    assert sine.resident_warps == 8
    assert (reduce.registers, reduce.spill_bytes, reduce.block_threads,
            reduce.shared_bytes) == (40, 32, 256, 8192 + 4096)
    # 40 x 32 = 1280 per warp, 8 warps: 6 blocks by registers, 17 by shared
    # memory (233472 // 13312), 8 by warps.
    assert reduce.resident_warps == 48
    table = xla_gpu_model.format_table([sine, reduce])
    assert 'warps/SM' in table and 'spills 32 B' in table
    assert xla_gpu_model.occupancy([sine, reduce]) == ''  # neither loops
    walk = dataclasses.replace(sine, kernel='walk', loop_instructions=3)
    assert xla_gpu_model.occupancy([walk, reduce]) == 'walk=255/8'
    assert xla_gpu_model.occupancy(
        [dataclasses.replace(walk, spill_bytes=64)]) == 'walk=255/8+64'
    # Without ptxas (or asked not to), no registers: the table says nothing.
    rows = xla_gpu_model.kernel_table(dump, assemble=False)
    assert all(r.registers is None and r.resident_warps is None
               for r in rows)
    assert 'warps/SM' not in xla_gpu_model.format_table(rows)


def test_a_ptxas_that_refuses_a_module_leaves_its_rows_unassembled(
        tmp_path, monkeypatch):
    fake_ptxas(tmp_path, monkeypatch,
               report="ptxas fatal   : Unsupported .version 9.0\n", status=255)
    with pytest.warns(UserWarning, match='Unsupported .version 9.0'):
        rows = xla_gpu_model.kernel_table(_dump(tmp_path / 'dump'))
    assert [r.registers for r in rows] == [None, None]


def test_ptx_tensor_cores_are_mma_instructions():
    mma = PTX.replace('\tsin.approx.f32 \t%f2, %f1;',
                      '\tmma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 '
                      '\t{%f2}, {%r1}, {%r1}, {%f1};')
    assert xla_gpu_model.ptx_tensor_cores(PTX) == set()
    assert xla_gpu_model.ptx_tensor_cores(mma) == {'loop_sine_fusion'}


def test_ptx_loops_are_backward_branches():
    # PTX's forward branch skips the store; LOOP_PTX branches back up.
    def ptx_loops(ptx):
        return set(xla_gpu_model.ptx_loop_instructions(ptx))
    assert ptx_loops(PTX) == set()
    assert ptx_loops(LOOP_PTX) == {'walk'}
    assert ptx_loops(PTX + LOOP_PTX) == {'walk'}


def _dump(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / 'module_0001.jit_f.sm_9.0a_gpu_after_optimizations.txt'
     ).write_text(HLO)
    (tmp_path / 'module_0001.jit_f.thunk_sequence.txt').write_text(THUNKS)
    (tmp_path / 'module_0001.jit_f.1.ptx').write_text(PTX)
    return tmp_path


def test_shape_bytes_counts_every_array_of_a_type():
    assert xla_gpu_model.shape_bytes('f32[256,1024]{1,0}') == 4 * 256 * 1024
    assert xla_gpu_model.shape_bytes('(f32[2,3]{1,0}, c64[4]{0}, pred[8])') \
        == 24 + 32 + 8
    assert xla_gpu_model.shape_bytes('f32[]') == 4


def test_ptx_instructions_leave_out_directives_and_parameter_loads():
    # mov, sin, the predicated branch, st and ret: 5.
    assert xla_gpu_model.ptx_instructions(PTX) == {'loop_sine_fusion': 5}


def test_kernel_table_reads_launches_bytes_and_instructions(tmp_path):
    rows = xla_gpu_model.kernel_table(_dump(tmp_path))
    assert [r.kernel for r in rows] == ['loop_sine_fusion',
                                        'input_reduce_fusion_1']
    sine, reduce = rows
    assert not (sine.loop or reduce.loop or sine.tensor_cores)
    assert (sine.threads, sine.instructions) == (512 * 128, 5)
    assert sine.bytes_in == sine.bytes_out == 4 * 256 * 1024
    # No PTX for it in the dump: no instructions; 2-D grid multiplied out.
    assert (reduce.threads, reduce.instructions) == (8 * 2 * 256, 0)
    assert (reduce.bytes_in, reduce.bytes_out) == (4 * 256 * 1024, 4 * 256)
    assert sine.seconds == pytest.approx(
        max(2 * 4 * 256 * 1024 / xla_gpu_model.BANDWIDTH,
            512 * 128 * 5 / xla_gpu_model.ISSUE_RATE))
    totals = xla_gpu_model.summary(rows, per=2)
    assert totals['launches'] == 2
    assert totals['model_us'] == pytest.approx(
        (sine.seconds + reduce.seconds) / 2 * 1e6)
    assert totals['serial_us'] == pytest.approx(
        (sine.memory_seconds + sine.issue_seconds + reduce.memory_seconds
         + reduce.issue_seconds) / 2 * 1e6)
    assert totals['serial_us'] > totals['model_us']
    assert totals['megabytes'] == pytest.approx(
        (3 * 4 * 256 * 1024 + 4 * 256) / 2 / 1e6)
    assert 'loop_sine_fusion' in xla_gpu_model.format_table(rows)


def test_loop_trips_multiply_the_loop_body_only(tmp_path):
    """A looping kernel's issue estimate counts its loop body once, or
    ``loop_trips`` times where given; the instructions outside the loop
    once either way. A name that launches no looping kernel is an error."""
    looping = PTX.replace('\tmov.u32 \t%r1, %ctaid.x;',
                          '$L__BB0_1:\n\tmov.u32 \t%r1, %ctaid.x;').replace(
        'bra \t$L__BB0_2;', 'bra \t$L__BB0_1;')
    # mov, sin and the branch back are the body; st and ret after it.
    assert xla_gpu_model.ptx_loop_instructions(looping) == {
        'loop_sine_fusion': 3}
    assert xla_gpu_model.ptx_loop_instructions(PTX) == {}
    dump = _dump(tmp_path)
    (dump / 'module_0001.jit_f.1.ptx').write_text(looping)
    once, = [r for r in xla_gpu_model.kernel_table(dump)
             if r.kernel == 'loop_sine_fusion']
    assert once.loop and once.trips is None
    assert once.executed_instructions == 5
    walked, = [r for r in xla_gpu_model.kernel_table(
        dump, loop_trips={'loop_sine_fusion': 4.5})
        if r.kernel == 'loop_sine_fusion']
    assert walked.executed_instructions == 5 + 3.5 * 3
    assert walked.issue_seconds == pytest.approx(
        512 * 128 * (5 + 3.5 * 3) / xla_gpu_model.ISSUE_RATE)
    text = xla_gpu_model.format_table([walked])
    assert 'loop_sine_fusion~' in text and '3 in loops x 4.5 trips' in text
    with pytest.raises(SystemExit):
        xla_gpu_model.main(['--loop-trips', 'cntk_diag=oops'])


def test_kernel_table_of_a_loop_reads_its_body_only(tmp_path):
    dump = _dump(tmp_path)
    (dump / 'module_0001.jit_f.thunk_sequence.txt').write_text(
        '001: kCustomKernel [source | sink] loop_sine_fusion grid: [512, 1, 1] '
        'threads: [128, 1, 1]  shared_memory: 0 bytes\n'
        '002: kWhile [prev=001 (1) | sink ]\n  body:\n'
        '    003: kCustomKernel [source | sink] input_reduce_fusion_1 grid: '
        '[8, 1, 1] threads: [256, 1, 1]  shared_memory: 0 bytes\n'
        '    004: kWhile [prev=003 (1) | sink ]\ncondition:\n'
        '        005: kCustomKernel [source | sink] loop_sine_fusion grid: '
        '[1, 1, 1] threads: [1, 1, 1]  shared_memory: 0 bytes\n'
        '006: kCustomKernel [source | sink] loop_sine_fusion grid: [9, 1, 1] '
        'threads: [128, 1, 1]  shared_memory: 0 bytes\n')
    # The body, with its nested loop's kernels once; not the kernels before
    # and after the loop.
    assert [(r.kernel, r.threads) for r in xla_gpu_model.kernel_table(dump)
            ] == [('input_reduce_fusion_1', 8 * 256), ('loop_sine_fusion', 1)]


def test_triton_calls_are_keyed_by_their_kernel_names():
    """A Pallas step's Triton call launches the kernel its backend config
    names; a second call of the same name is launched as ``name__1``."""
    hlo = (
        '  %x.1 = f32[8,8]{1,0} parameter(0)\n'
        '  %pallas_call.0 = f32[4]{0} custom-call(%x.1), custom_call_target='
        '"__gpu$xla.gpu.triton", backend_config={debug = false, name = '
        '"walk", num_warps = 4 : i32}\n'
        '  %y.1 = f32[2]{0} parameter(1)\n'
        '  %pallas_call.3 = f32[1]{0} custom-call(%y.1), custom_call_target='
        '"__gpu$xla.gpu.triton", backend_config={debug = false, name = '
        '"walk", num_warps = 4 : i32}\n')
    assert xla_gpu_model.fusion_bytes(hlo) == {'walk': (256, 16),
                                               'walk__1': (8, 4)}


def test_tuple_elements_read_as_jaxlib_0_11_writes_them():
    """jaxlib 0.11 names a tuple's element ``%t#k`` (0.10 wrote a
    get-tuple-element): an operand so named counts its element's bytes only,
    past XLA's ``/*index=5*/`` comments and nested tuples."""
    tuple_type = ('(s32[], f32[2,3]{1,0}, (f32[5]{0}, s8[7]{0}), f32[1]{0}, '
                  'f32[1]{0}, /*index=5*/f32[16]{0})')
    assert xla_gpu_model.tuple_element(tuple_type, 1) == 'f32[2,3]{1,0}'
    assert xla_gpu_model.tuple_element(tuple_type, 2) == '(f32[5]{0}, s8[7]{0})'
    assert xla_gpu_model.tuple_element(tuple_type, 5) == 'f32[16]{0}'
    assert xla_gpu_model.tuple_element(tuple_type, 6) == ''
    assert xla_gpu_model.tuple_element('f32[4]{0}', 0) == ''
    hlo = (
        f'  %arg_tuple.1 = {tuple_type} parameter(0)\n'
        '  %pallas_call.9 = (f32[64]{0}, f32[64]{0}) custom-call(%arg_tuple.1#1'
        ', %arg_tuple.1#5), custom_call_target="__gpu$xla.gpu.triton", '
        'backend_config={debug = false, name = "walk", num_warps = 4 : i32}\n'
        '  %loop_add_fusion = f32[64]{0} fusion(%pallas_call.9#0, '
        '%arg_tuple.1#2), kind=kLoop, calls=%fused_add\n')
    assert xla_gpu_model.fusion_bytes(hlo) == {
        'walk': (4 * 6 + 4 * 16, 2 * 4 * 64),
        'loop_add_fusion': (4 * 64 + 4 * 5 + 7, 4 * 64)}


CUDNN_HLO = """\
ENTRY %main (x.1: f32[16,64,64,3], w.1: f32[64,3,3,3], g.1: f32[160,64,64,64], v.1: f32[64,3,3,192]) -> f32[160,64,64,64] {
  %x.1 = f32[16,64,64,3]{3,2,1,0} parameter(0)
  %w.1 = f32[64,3,3,3]{3,2,1,0} parameter(1)
  %g.1 = f32[160,64,64,64]{3,2,1,0} parameter(2)
  %v.1 = f32[64,3,3,192]{3,2,1,0} parameter(3)
  %cudnn-conv.1 = (f32[16,64,64,64]{3,2,1,0}, u8[0]{0}) custom-call(%x.1, %w.1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_o01i->b01f, operand_precision={highest,highest}, custom_call_target="__cudnn$convForward", backend_config={}
  %cudnn-conv-bw-input.2 = (f32[160,64,64,192]{3,2,1,0}, u8[0]{0}) custom-call(%g.1, %v.1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convBackwardInput", backend_config={}
  ROOT %gte = f32[160,64,64,64]{3,2,1,0} get-tuple-element(%cudnn-conv-bw-input.2), index=0
}
"""


def test_cudnn_convolutions_count_multiply_adds_and_tensor_cores():
    """A forward convolution at ``highest`` (float32 units) and a backward
    input one at the default precision (TF32 tensor cores): ``2 x`` filter
    entries ``x`` output positions, the forward output's features divided
    out; the time at the units' peak, or the memory's when that is slower."""
    forward, backward = xla_gpu_model.cudnn_convolutions(CUDNN_HLO)
    assert (forward.kind, forward.tensor_cores) == ('forward', False)
    assert forward.flops == 2 * 16 * 64 * 64 * 64 * 3 * 3 * 3
    assert forward.bytes_in == 4 * (16 * 64 * 64 * 3 + 64 * 27)
    assert forward.bytes_out == 4 * 16 * 64 * 64 * 64
    assert forward.seconds == pytest.approx(
        (forward.bytes_in + forward.bytes_out) / xla_gpu_model.BANDWIDTH)
    assert (backward.kind, backward.tensor_cores) == ('backward_input', True)
    assert backward.flops == 2 * 160 * 64 * 64 * 64 * 3 * 3 * 192
    assert backward.seconds == pytest.approx(
        backward.flops / xla_gpu_model.TF32_PEAK)
    totals = xla_gpu_model.convolution_summary([forward, backward])
    assert totals['cudnn_calls'] == 2
    assert totals['cudnn_tensor_core_calls'] == 1
    assert totals['cudnn_gflop'] == pytest.approx(
        (forward.flops + backward.flops) / 1e9)


def test_kernel_table_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='no XLA:GPU dump'):
        xla_gpu_model.kernel_table(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec('jax_plugins') is None
                    or importlib.util.find_spec('jax_plugins.xla_cuda13')
                    is None, reason="needs JAX's CUDA plugin (make "
                                    "xla-gpu-model)")
def test_compiles_a_kernel_for_an_h100(tmp_path):
    """Where the plugin is installed: a deviceless H100 compilation dumps a
    program whose launches the table reads."""
    import jax.numpy as jnp
    xla_gpu_model.compile_for_h100(lambda a: jnp.sin(a) @ a,
                                   [((128, 128), jnp.float32)], tmp_path)
    rows = xla_gpu_model.kernel_table(tmp_path)
    assert rows and all(r.threads > 0 for r in rows)
    assert any(r.instructions > 0 for r in rows)


@pytest.mark.skipif(importlib.util.find_spec('jax_plugins') is None
                    or importlib.util.find_spec('jax_plugins.xla_cuda13')
                    is None, reason="needs JAX's CUDA plugin (make "
                                    "xla-gpu-model)")
def test_compiles_a_pallas_kernel_for_an_h100(tmp_path, monkeypatch):
    """Where the plugin is installed: a Pallas (Triton) kernel compiles for an
    H100 without one (jaxlib 0.11 needs :func:`xla_gpu_model.abstract_h100`)
    and its launch is read with its PTX and its operand's bytes; where a
    ptxas is installed too, with its registers."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as pl_triton

    def add_one(x_ref, o_ref):
        o_ref[...] = x_ref[...] + 1.0

    def fn(a):
        return pl.pallas_call(
            add_one, name='add_one',
            out_shape=jax.ShapeDtypeStruct(a.shape, a.dtype),
            compiler_params=pl_triton.CompilerParams(num_warps=4))(a)

    xla_gpu_model.compile_for_h100(fn, [((64, 64), jnp.float32)], tmp_path)
    [row] = [r for r in xla_gpu_model.kernel_table(tmp_path)
             if r.kernel == 'add_one']
    assert row.instructions > 0
    assert row.bytes_in == row.bytes_out == 4 * 64 * 64
    assert row.block_threads == 4 * 32 and row.registers is None
    if FIND_PTXAS() is None:
        return
    # Assembled by the real ptxas for the H100: at most 64 registers a
    # thread (40 with CUDA 13.0), no spills, so at least 8 blocks of 4 warps
    # an SM.
    monkeypatch.setattr(xla_gpu_model, 'find_ptxas', FIND_PTXAS)
    [row] = [r for r in xla_gpu_model.kernel_table(tmp_path)
             if r.kernel == 'add_one']
    assert 0 < row.registers <= 64 and row.spill_bytes == 0
    assert 32 <= row.resident_warps <= 64
