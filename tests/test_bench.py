"""``make bench`` at tiny sizes: the engine rows record the block choice."""

import numpy as np
import pandas as pd

from ntkexp import bench


def test_bench_infinite_records_block_size_and_memory(tmp_path):
    frame = bench.main(['--only', 'infinite', '--arch', 'fc', 'resnet',
                        '--n', 'fc=96', 'resnet=40', 'image=4',
                        '--repeats', '1', '--memory-gb', '0.00005',
                        '--out', str(tmp_path)])
    written = pd.read_csv(next(tmp_path.glob('bench_*.csv')))
    assert len(written) == len(frame) == 8
    assert set(written.method) == {'nt_jit', 'nt_jit_host', 'nt_batch',
                                   'ntkexp_engine'}
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
