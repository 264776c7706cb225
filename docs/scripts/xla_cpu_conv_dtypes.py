"""XLA's CPU convolution of one-channel images: float32 against float64.

Plain neural-tangents convolves each pair's spatial covariance as a batch of
one-channel images (``lax.conv_general_dilated`` with a ``3 x 3 x 1 x 1``
filter, e.g. ``f32[16384,32,32,1]`` for a 4 x 4 block of Myrtle-5 at 32x32).
On XLA's CPU backend the float32 convolution goes to a library kernel that is
several times slower, per output, than the float64 one, which XLA emits as a
loop. That makes neural-tangents' float32 kernels on a CPU slower than its
float64 kernels of the same network (``results/bench/session7/``), so ratios
to its float32 kernels on a CPU overstate what a faster algorithm gains.

This times that one convolution in both precisions (median of 5 after a
warm-up), each in a fresh process, and writes a CSV. jaxlib 0.10.2's float64
convolution of a one-channel program argument crashes now and then
(segmentation fault, batches of 256 and more; not seen with jaxlib 0.11.2);
a crashed measurement is run again. Neural-tangents' kernels convolve computed
arrays, not program arguments, and have not crashed.

Usage (``results/bench/session7/README.md``)::

    python docs/scripts/xla_cpu_conv_dtypes.py --out results/bench/session7/xla_cpu_conv_dtypes.csv
"""

import argparse

import numpy as np

import script_rows

import jax
from jax import lax

from ntkexp import bench

jax.config.update('jax_enable_x64', True)

# (images, side, channels): one Myrtle-5 32x32 layer of a 2x2 block, and the
# same with 8 channels (a library kernel's usual case).
SHAPES = ((4096, 32, 1), (512, 32, 8))


def conv_seconds(batch: int, side: int, channels: int, dtype: str,
                 repeats: int = 5) -> float:
    """Median wall seconds of a SAME 3x3 convolution, channels in = out."""
    rng = np.random.RandomState(0)
    x = jax.numpy.asarray(rng.randn(batch, side, side, channels), dtype)
    w = jax.numpy.asarray(rng.randn(3, 3, channels, channels), dtype)
    conv = jax.jit(lambda a, b: lax.conv_general_dilated(
        a, b, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    return bench.timed(lambda: conv(x, w), repeats)[0]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=None, help='CSV path')
    parser.add_argument('--one', nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        batch, side, channels, dtype = args.one
        print(conv_seconds(int(batch), int(side), int(channels), dtype))
        return
    rows = []
    for batch, side, channels in SHAPES:
        for dtype in ('float32', 'float64'):
            # A crashed float64 measurement is run again (module docstring).
            seconds = float(script_rows.in_fresh_process(
                __file__, ['--one', str(batch), str(side), str(channels),
                           dtype], tries=5))
            outputs = batch * side * side * channels
            rows.append(dict(shape=f'{batch}x{side}x{side}x{channels}',
                             dtype=dtype, seconds=seconds,
                             ns_per_output=seconds / outputs * 1e9,
                             device=jax.devices()[0].device_kind,
                             jax=jax.__version__))
            print(rows[-1], flush=True)
    script_rows.write_rows(rows, __file__, argv, args.out)


if __name__ == '__main__':
    main()
