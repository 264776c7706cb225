"""``make bench`` at tiny sizes: the engine rows record the block choice."""

import jax
import numpy as np
import pandas as pd
import pytest

from ntkexp import bench, models


def test_bench_infinite_records_block_size_and_memory(tmp_path):
    frame = bench.main(['--only', 'infinite', '--arch', 'fc', 'resnet',
                        '--n', 'fc=96', 'resnet=40', 'image=4',
                        '--repeats', '1', '--memory-gb', '0.00005',
                        '--out', str(tmp_path)])
    written = pd.read_csv(next(tmp_path.glob('bench_*.csv')))
    assert len(written) == len(frame) == 10
    # The device named: on a CPU its processor and cores (JAX says just 'cpu').
    from ntkexp import records  # pylint: disable=g-import-not-at-top
    assert set(written.device) == {f'cpu:{records.cpu_name()}'}
    assert records.cpu_name().endswith(' cores)') and written.device[0] != 'cpu:cpu'
    assert set(written.method) == {'nt_jit', 'nt_jit_host', 'nt_batch',
                                   'ntkexp_engine', 'ntkexp_fastconv_engine'}
    # The dense recursion (ntkexp.fastconv.dense) against plain neural-tangents'
    # float32 jit, whose diagonal is off by ~2e-4 (the ReLU step at
    # correlation 1; tests/test_fastconv_dense.py checks both against float64).
    fast = written[written.method == 'ntkexp_fastconv_engine'].set_index('arch')
    assert (fast.rel_diff < 1e-3).all()
    assert (fast.fast_kernel.astype(str).str.lower() == 'true').all()
    engine = written[written.method == 'ntkexp_engine'].set_index('arch')
    batch = written[written.method == 'nt_batch'].set_index('arch')
    for arch, n in (('fc', 96), ('resnet', 40)):
        row = engine.loc[arch]
        assert 1 <= row.block <= n
        assert row.blocks == (-(-n // row.block)) * (-(-n // row.block) + 1) / 2
        assert row.budget_bytes == 0.00005 * 1024 ** 3
        assert 0 < row.compiled_bytes <= row.budget_bytes
        assert 0 < row.predicted_bytes <= row.budget_bytes
        # float32: blocks round like nt.batch's (the arc-cosine step amplifies
        # rounding near the diagonal), not like one jit call.
        assert row.rel_diff <= batch.loc[arch].rel_diff + 1e-6
        assert row.rel_diff < 1e-3
        assert np.isfinite(row.ratio_vs_nt_jit_host)
    # 52 KiB is less than either whole kernel program (78 and 80 kB): blocks.
    assert engine.loc['fc'].block < 96 and engine.loc['resnet'].block < 40


def test_bench_empirical_subset_ratio_and_agreement(tmp_path):
    """``--empirical-impl`` times the named implementations only; the first
    is the reference, and structured derivatives (neural-tangents' and
    ntkexp's, each convolution contracted by its cost model, by per-image
    gradients or by position pairs) give the same NTK."""
    methods = ['JACOBIAN_CONTRACTION', 'STRUCTURED_DERIVATIVES',
               'NTKEXP_STRUCTURED', 'NTKEXP_STRUCTURED_GRADIENTS',
               'NTKEXP_STRUCTURED_PAIRS']
    frame = bench.main(['--only', 'empirical', '--empirical-impl', *methods,
                        '--n', 'empirical_n=2', 'image=8', '--repeats', '1',
                        '--out', str(tmp_path)])
    assert list(frame.method) == methods
    assert 'error' not in frame or frame.error.isna().all()
    assert frame.ratio_vs_jacobian_contraction.iloc[0] == 1.0
    assert np.all(frame.ratio_vs_jacobian_contraction > 0)
    assert np.all(frame.rel_diff.iloc[1:] < 1e-5)
    assert set(frame.matmul_precision) == {str(bench.jax.config.jax_default_matmul_precision)}
    assert frame.command.iloc[0].startswith('python -m ntkexp.bench --only empirical')


def test_empirical_bounds_are_the_backward_passes(tmp_path):
    """``cotangent_floor_fn`` runs one backward pass per image and logit: its
    output is the per-logit gradient with respect to each image (equal to
    ``jax.jacrev``); ``weight_gradients_fn`` gives each logit's parameter
    gradient summed over the images. The bench adds both as rows with their
    ratios to Jacobian contraction."""
    init_fn, apply_fn, _ = models.wrn(depth=10, width=4, out_dim=3)
    x = np.random.RandomState(0).randn(2, 6, 6, 3).astype(np.float32)
    _, params = init_fn(bench.jax.random.PRNGKey(0), x.shape)
    got = np.asarray(bench.jax.jit(bench.cotangent_floor_fn(apply_fn))(
        x, params))
    jac = np.asarray(bench.jax.jit(bench.jax.jacrev(
        lambda a: apply_fn(params, a)))(x))
    assert got.shape == (3, 2, 6, 6, 3)
    for i in range(2):
        for k in range(3):
            np.testing.assert_allclose(got[k, i], jac[i, k, i], rtol=1e-5,
                                       atol=1e-6 * np.abs(jac).max())
    # weight_gradients_fn: each logit's parameter gradient summed over images.
    grads = bench.jax.jit(bench.weight_gradients_fn(apply_fn))(x, params)
    jac = bench.jax.jit(bench.jax.jacrev(lambda p: apply_fn(p, x)))(params)
    flat_grads = bench.jax.tree_util.tree_leaves(grads)
    flat_jac = bench.jax.tree_util.tree_leaves(jac)
    # 7 convolutions, 2 shortcut projections, the readout.
    assert len(flat_grads) == len(flat_jac) == 10
    for g, j in zip(flat_grads, flat_jac):
        j = np.asarray(j).sum(axis=0)  # (logit, *param shape), summed images
        np.testing.assert_allclose(np.asarray(g), j, rtol=1e-4,
                                   atol=1e-5 * max(np.abs(j).max(), 1e-6))
    # The structured NTK's factors part: per image and logit, the
    # cotangents of every convolution's output, as the floor's passes give.
    factors = bench.jax.jit(bench.structured_factors_fn(apply_fn))(x, params)
    assert len(factors) == 10  # as many terms as weights tapped
    # The first convolution (3 -> 4 channels): sum_p patch_p (x) cotangent_p
    # is each image's and logit's weight gradient.
    patches, cotangents = (np.asarray(a) for a in factors[0])
    grads = np.einsum('nptc,knpd->kntcd', patches, cotangents)
    first = [np.asarray(j) for j in flat_jac if j.shape[-4:] == (3, 3, 3, 4)]
    assert len(first) == 1
    want = np.moveaxis(first[0], 1, 0).reshape(grads.shape)  # (k, n, 9, 3, 4)
    np.testing.assert_allclose(grads, want, rtol=1e-4,
                               atol=1e-5 * np.abs(want).max())
    # The readout's product: the cotangent of its output for logit k is e_k
    # times the NTK parameterisation's scale, the same for every image.
    readout = np.asarray(factors[-1][1])
    scale = readout[0, 0, 0]
    assert scale > 0
    np.testing.assert_allclose(
        readout, scale * np.broadcast_to(np.eye(3)[:, None, :], (3, 2, 3)),
        atol=1e-6)
    frame = bench.main(['--only', 'empirical', '--empirical-impl',
                        'JACOBIAN_CONTRACTION', 'COTANGENT_FLOOR',
                        'WEIGHT_GRADIENTS', 'NTKEXP_STRUCTURED_FACTORS',
                        '--n', 'empirical_n=2', 'image=8',
                        '--repeats', '1', '--out', str(tmp_path)])
    assert list(frame.method) == ['JACOBIAN_CONTRACTION', 'COTANGENT_FLOOR',
                                  'WEIGHT_GRADIENTS',
                                  'NTKEXP_STRUCTURED_FACTORS']
    for _, bound in frame.iloc[1:].iterrows():
        assert bound.ratio_vs_jacobian_contraction == pytest.approx(
            frame.seconds.iloc[0] / bound.seconds)
        assert np.isnan(bound.rel_diff)


def test_fastconv_bench_rows_agree_with_neural_tangents(tmp_path):
    """``python -m ntkexp.fastconv.bench``: one row per method, the fast
    kernel equal to neural-tangents (float32), the command in the CSV."""
    from ntkexp.fastconv import bench as fastconv_bench
    out = tmp_path / 'fastconv.csv'
    fastconv_bench.main(['--arch', 'cnn_gap,myrtle5', '--side', '4', '--n', '2',
                         '--repeats', '1', '--variants', 'default,materialize_off',
                         '--out', str(out)])
    frame = pd.read_csv(out)
    assert set(frame.device.str.split(':').str[0]) == {'cpu'}  # bench_targets: not judged
    assert list(zip(frame.arch, frame.method)) == [
        ('cnn_gap', 'nt'), ('cnn_gap', 'fastconv'),
        ('cnn_gap', 'fastconv_materialize_off'),
        ('myrtle5', 'nt'), ('myrtle5', 'fastconv'),
        ('myrtle5', 'fastconv_materialize_off')]
    # The default materialises the padded covariances on a CPU; both agree
    # with nt.
    assert list(frame.materialize_padded.fillna('-').astype(str)) == [
        '-', 'True', 'False'] * 2
    assert np.all(frame[frame.method != 'nt'].rel_diff_vs_nt < 2e-6)
    fast = frame[frame.method == 'fastconv']
    assert np.all(fast.compiled_bytes > 0)
    assert np.allclose(fast.speedup_vs_nt * fast.seconds,
                       frame[frame.method == 'nt'].seconds.values)
    assert set(frame.command) == {
        'python -m ntkexp.fastconv.bench --arch cnn_gap,myrtle5 --side 4 '
        f'--n 2 --repeats 1 --variants default,materialize_off --out {out}'}


def test_fastconv_bench_keeps_each_row_as_it_is_measured(tmp_path,
                                                        monkeypatch):
    """A run cut short (``tools/gpu_check.sh``'s step limits kill it) leaves
    the rows it measured in its CSV, not only those of finished
    architectures."""
    from ntkexp.fastconv import bench as fastconv_bench
    timed, calls = fastconv_bench.timed, []

    def cut_at_the_third(fn, repeats):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as the step's timeout would, mid-arch
        return timed(fn, repeats)

    monkeypatch.setattr(fastconv_bench, 'timed', cut_at_the_third)
    out = tmp_path / 'fastconv.csv'
    with pytest.raises(KeyboardInterrupt):
        fastconv_bench.main(['--arch', 'cnn_gap', '--side', '4', '--n', '2',
                             '--repeats', '1', '--variants',
                             'default,materialize_off', '--out', str(out)])
    frame = pd.read_csv(out)
    assert list(frame.method) == ['nt', 'fastconv']
    assert frame.rel_diff_vs_nt.iloc[1] < 2e-6


def test_fastconv_bench_times_each_pallas_kind_at_its_own_warps(tmp_path):
    """Without ``--num-warps`` each Pallas row runs the warps its kind runs
    as ``fast_kernel=pallas_<kind>`` (8 for the diagonal kinds, 4 for
    ``rows``), named in its method (at 4x4 the steps' tiles go to XLA, so
    the rows run on a CPU too, equal to neural-tangents)."""
    from ntkexp.fastconv import bench as fastconv_bench
    out = tmp_path / 'fastconv.csv'
    fastconv_bench.main(['--arch', 'myrtle5', '--side', '4', '--n', '2',
                         '--repeats', '1', '--pallas',
                         '--pallas-kinds', 'rows,diagonal_first_masked',
                         '--out', str(out)])
    frame = pd.read_csv(out)
    assert list(frame.method) == ['nt', 'fastconv', 'fastconv_pallas_w4',
                                  'fastconv_pallas_diagonal_first_masked_w8']
    assert (frame.rel_diff_vs_nt.iloc[1:] < 2e-6).all()


def test_fastconv_bench_rejects_unknown_pallas_kinds(capsys):
    from ntkexp.fastconv import bench as fastconv_bench
    with pytest.raises(SystemExit):
        fastconv_bench.main(['--pallas', '--pallas-kinds', 'rows,diagonals'])
    assert "unknown ['diagonals']" in capsys.readouterr().err


def test_stage_bench_command_line(capsys):
    """``stage_bench``'s modes parse as its docstring shows them; ``--help``
    prints the usage (it once raised ``ValueError``)."""
    from ntkexp.fastconv import stage_bench
    args = stage_bench.parse_args(['16'])
    assert (args.step_side, args.layers, args.kernels) == (16, None, None)
    args = stage_bench.parse_args(['--layers', 'myrtle5', '--side', '8',
                                   '--n', '4'])
    assert (args.layers, args.side, args.n) == ('myrtle5', 8, 4)
    args = stage_bench.parse_args(['--kernels', 'wrn', '--hlo', 'x.txt'])
    assert (args.kernels, args.hlo, args.side) == ('wrn', 'x.txt', 32)
    with pytest.raises(SystemExit):
        stage_bench.parse_args(['--layers', 'a', '--kernels', 'b'])
    with pytest.raises(SystemExit):
        stage_bench.main(['--help'])
    assert '--layers ARCH' in capsys.readouterr().out


def test_stage_bench_layer_profile_covers_every_layer():
    """``stage_bench --layers``: one cumulative time per layer of the net,
    whose differences are the per-layer figures."""
    from ntkexp.fastconv import stage_bench
    rows = stage_bench.layer_profile('myrtle5', side=4, n=1, repeats=1)
    _, _, kernel_fn = models.myrtle(depth=5, width=64)
    assert [r['kind'] for r in rows] == list(kernel_fn.net.layers)
    cumulative = [r['us_per_pair_cumulative'] for r in rows]
    assert all(c > 0 for c in cumulative)
    assert np.allclose(np.cumsum([r['us_per_pair_layer'] for r in rows]),
                       cumulative)


def test_stage_bench_steps_compute_the_same_stage():
    """``stage_bench``'s groups time one computation: the first stage from
    the patches (XLA, and in the interpreter the diagonal steps after XLA's
    product and from the patches) equals the first ReLU then the step from the product, and
    that equals the step on the ReLU'd covariances, float64."""
    from ntkexp.fastconv import pallas, recursion, stage_bench
    with jax.enable_x64(True):
        side, coeffs = 6, dict(pool=2, **stage_bench.COEFFS)
        raw, raw_t, u1, u2, v1, v2 = stage_bench.step_inputs(side, 1, 2,
                                                             np.float64)
        nngp, dot = recursion.relu(raw, recursion.block_variance_product(u1, u2))
        want = pallas._xla_conv_relu(nngp, raw_t * dot, v1, v2, **coeffs)  # pylint: disable=protected-access
        patched = stage_bench.patch_inputs(side, 1, 2, np.float64)
        for kind in ('xla', 'diagonal_relu_in', 'diagonal_patches'):
            got = stage_bench._first_stage(kind, 2, 4, True)(*patched)  # pylint: disable=protected-access
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-12)


def test_stage_bench_kernel_profile_reads_the_trace(tmp_path):
    """``stage_bench --kernels``: the profiler trace is read back into rows,
    largest first, and the optimised HLO is written."""
    from ntkexp.fastconv import stage_bench
    hlo = tmp_path / 'kernel.hlo.txt'
    rows = stage_bench.kernel_profile('cnn_gap', side=4, n=2, repeats=1,
                                      hlo=str(hlo))
    assert rows and all(r['us_per_pair'] >= 0 for r in rows)
    times = [r['us_per_pair'] for r in rows]
    assert times == sorted(times, reverse=True)
    assert 0 < sum(r['share'] for r in rows) <= 1 + 1e-9
    assert 'ENTRY' in hlo.read_text()


def test_bench_float64_kernels_equal_and_are_labelled(tmp_path):
    """``--dtype float64`` (the precision ``ntkexp run`` computes kernels in):
    the engine's blocks equal one jitted call to float64 rounding, rows and
    file say float64; other sections refuse it (they would silently change
    precision)."""
    frame = bench.main(['--only', 'infinite', '--arch', 'fc', '--dtype',
                        'float64', '--n', 'fc=40', 'image=4', '--repeats', '1',
                        '--memory-gb', '0.00002', '--out', str(tmp_path)])
    (written,) = tmp_path.iterdir()
    assert written.name.startswith('bench_') and written.name.endswith(
        '_float64.csv')
    assert set(frame.dtype) == {'float64'}
    engine = frame.set_index('method').loc['ntkexp_engine']
    assert engine.block < 40
    assert engine.rel_diff < 1e-12
    with pytest.raises(SystemExit):
        bench.main(['--dtype', 'float64', '--out', str(tmp_path)])


def test_bench_times_what_auto_runs_where_it_is_not_the_xla_recursion(
        tmp_path, monkeypatch):
    """With ``--gpu-auto-pallas-kind KIND:WARPS`` (what ``bench_targets
    --choice`` prints) ``make bench`` times ``fast_kernel=auto`` as if
    ``select.GPU_AUTO_PALLAS_KIND`` were set: on a GPU that kind's Pallas
    steps, in its own row beside the XLA recursion's, for the networks it
    serves (CNN-GAP, Myrtle; not the WRN), and sets nothing for later. The
    GPU is stood in for by the choice's backend check alone: the steps run in
    the interpreter (at 4x4 their tiles go to XLA), as close to
    neural-tangents as the XLA recursion. ``--no-nt-engine`` leaves out the
    rows that size neural-tangents' kernel in the engine."""
    from types import SimpleNamespace
    from ntkexp.fastconv import pallas, select
    fn, kwargs = bench.ARCHITECTURES['cnn_gap']
    assert fn(**kwargs, fast_kernel='auto')[2].impl == 'xla'  # None: no row
    monkeypatch.setattr(select, 'backend',
                        SimpleNamespace(target_backend=lambda: 'gpu'))
    frame = bench.main(['--only', 'infinite', '--arch', 'cnn_gap', 'wrn',
                        '--n', 'cnn_gap=2', 'wrn=2', 'image=4',
                        '--repeats', '1', '--no-nt-engine',
                        '--gpu-auto-pallas-kind', 'diagonal_first_masked:16',
                        '--out', str(tmp_path)])
    assert (select.GPU_AUTO_PALLAS_KIND, pallas.DIAGONAL_NUM_WARPS) == (None, 8)
    assert set(frame.method) == {'nt_jit', 'nt_jit_host',
                                 'ntkexp_fastconv_engine',
                                 'ntkexp_auto_engine'}
    fast = frame[frame.method.str.startswith('ntkexp')]
    kinds = dict(zip(fast.arch + '/' + fast.method,
                     zip(fast.fast_kernel, fast.pallas_num_warps.fillna(0))))
    assert kinds == {
        'cnn_gap/ntkexp_fastconv_engine': ('true', 0),
        'cnn_gap/ntkexp_auto_engine': ('pallas_diagonal_first_masked', 16),
        'wrn/ntkexp_fastconv_engine': ('true', 0)}
    # float32 at 4x4: the engine's rows differ from one jit call by rounding
    # (8e-6 here for CNN-GAP), the Pallas row as much as the XLA one.
    gap = fast[fast.arch == 'cnn_gap'].set_index('method').rel_diff
    assert gap.max() < 1e-4
    assert abs(gap['ntkexp_auto_engine'] - gap['ntkexp_fastconv_engine']) < 1e-6


def test_bench_rejects_a_malformed_auto_choice(capsys):
    for text, message in (('diagonals:8', 'must be one of rows, diagonal'),
                          ('diagonal_first_masked:6', 'WARPS must be 1, 2'),
                          ('rows:8', "'rows' kind runs its own 4 warps")):
        with pytest.raises(SystemExit):
            bench.main(['--only', 'infinite', '--gpu-auto-pallas-kind', text])
        assert message in capsys.readouterr().err
