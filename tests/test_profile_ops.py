"""``ntkexp.profile_ops``: device time per XLA operation, read back from JAX's
profiler trace and described from the compiled HLO."""

import tempfile

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from ntkexp import profile_ops

HLO = """HloModule jit_f, entry_computation_layout={(f32[8,8]{1,0})->f32[]}

%fused_computation (param_0: f32[8,8]) -> f32[8,8] {
  %param_0 = f32[8,8]{1,0} parameter(0)
  %sine.1 = f32[8,8]{1,0} sine(f32[8,8]{1,0} %param_0)
  ROOT %multiply.2 = f32[8,8]{1,0} multiply(f32[8,8]{1,0} %sine.1, f32[8,8]{1,0} %sine.1)
}

ENTRY %main.5 (Arg_0.1: f32[8,8]) -> f32[8,8] {
  %Arg_0.1 = f32[8,8]{1,0} parameter(0)
  ROOT %sine_fusion = f32[8,8]{1,0} fusion(f32[8,8]{1,0} %Arg_0.1), kind=kLoop, calls=%fused_computation
}
"""


def test_fusions_are_described_by_what_they_fuse():
    instructions, computations = profile_ops.parse_hlo(HLO)
    assert computations['fused_computation'] == ['parameter', 'sine',
                                                 'multiply']
    opcode, shape, contents = profile_ops.describe(
        'sine_fusion', instructions, computations)
    assert opcode == 'fusion/kLoop'
    assert shape.startswith('f32[8,8]')
    assert contents == 'sine:1 multiply:1'
    assert profile_ops.describe('absent', instructions, computations) == (
        '', '', '')
    assert profile_ops._op_name('%fusion.3 = f32[2] fusion(x)') == 'fusion.3'


def test_a_large_product_dominates_the_profile(tmp_path, monkeypatch):
    """A 768 x 768 matrix product next to an elementwise op on a small
    vector: the product's operation takes most of the time, and the shares
    sum to 1. The trace it read is removed (tens of MB a call; these once
    filled a machine's disk)."""
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    a = jnp.asarray(np.random.RandomState(0).randn(768, 768), jnp.float32)
    v = jnp.ones((16,))

    def fn(a, v):
        return a @ a, jnp.sin(v) + 1.0

    frame = profile_ops.profile_ops(fn, (a, v), repeats=2)
    assert isinstance(frame, pd.DataFrame) and len(frame) >= 1
    assert list(frame.us) == sorted(frame.us, reverse=True)
    assert abs(frame.share.sum() - 1) < 1e-9
    top = frame.iloc[0]
    assert top.share > 0.5
    assert 'dot' in top.opcode + top.contents
    assert top['shape'].startswith('f32[768,768]')
    assert list(tmp_path.iterdir()) == []


def test_command_line_profiles_empirical_ntk_methods_into_one_csv(
        tmp_path, capsys):
    out = tmp_path / 'ops.csv'
    frame = profile_ops.main(['--method', 'NTKEXP_STRUCTURED_FACTORS',
                              'COTANGENT_FLOOR', '--side', '6', '--n', '2',
                              '--wrn-k', '1', '--repeats', '1',
                              '--out', str(out)])
    printed = capsys.readouterr().out
    assert 'wrn-10-1 NTKEXP_STRUCTURED_FACTORS' in printed
    assert 'wrn-10-1 COTANGENT_FLOOR' in printed
    written = pd.read_csv(out)
    assert len(written) == len(frame) > 0
    assert list(written.target.unique()) == [
        'wrn-10-1 NTKEXP_STRUCTURED_FACTORS', 'wrn-10-1 COTANGENT_FLOOR']
    # The network's convolutions are in both; each table's shares sum to 1.
    for _, table in written.groupby('target'):
        assert table.opcode.fillna('').str.contains('convolution').any()
        assert table.share.sum() == pytest.approx(1.0)


def test_command_line_names_the_methods_it_knows():
    with pytest.raises(SystemExit, match='--method FOO: expected one of .*'
                       'JACOBIAN_CONTRACTION.*NTKEXP_STRUCTURED'):
        profile_ops.main(['--method', 'NTKEXP_STRUCTURED', 'FOO'])
