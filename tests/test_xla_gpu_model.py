"""ntkexp.xla_gpu_model: reading an XLA:GPU dump into per-kernel rows.

The dump below is a trimmed copy of what XLA writes for a two-kernel program
(names, shapes and launch lines in its formats); the compilation itself needs
JAX's CUDA plugin and runs only where it is installed.
"""

import importlib.util

import pytest

from ntkexp import xla_gpu_model

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
def test_compiles_a_pallas_kernel_for_an_h100(tmp_path):
    """Where the plugin is installed: a Pallas (Triton) kernel compiles for an
    H100 without one (jaxlib 0.11 needs :func:`xla_gpu_model.abstract_h100`)
    and its launch is read with its PTX and its operand's bytes."""
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
