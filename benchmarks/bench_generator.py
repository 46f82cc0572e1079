"""Generator forward throughput on this machine: eager vs tf.function vs XLA.

    python benchmarks/bench_generator.py [--archs stylegan3-t,stylegan3-r] [--batch 4] [--impl ref]

Full-size networks at 256x256 (channel_base 32768 for T, 65536 for R, as train.py
builds them). Prints a table of images/s and s/img; asserts nothing.
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags
import numpy as np
import tensorflow as tf

import afgan_tf

FLAGS = flags.FLAGS
flags.DEFINE_list('archs', ['stylegan3-t', 'stylegan3-r'], 'Architectures to time.')
flags.DEFINE_integer('resolution', 256, 'Image resolution.')
flags.DEFINE_integer('batch', 4, 'Batch size.')
flags.DEFINE_integer('repeats', 3, 'Timed calls per mode (after one warm-up call).')
flags.DEFINE_list('modes', ['eager', 'function', 'xla'], 'Execution modes.')
flags.DEFINE_enum('impl', 'ref', ['ref', 'custom', 'auto'], 'filtered_lrelu implementation.')


def time_calls(fn, z, repeats):
    fn(z).numpy()                       # Warm-up (tracing / compilation).
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(z).numpy()
        times.append(time.perf_counter() - start)
    return min(times)


def main(_):
    rows = []
    for arch in FLAGS.archs:
        G = afgan_tf.Generator(arch, z_dim=512, w_dim=512, img_resolution=FLAGS.resolution, seed=0)
        z = tf.constant(np.random.default_rng(0).standard_normal([FLAGS.batch, 512]).astype(np.float32))
        for mode in FLAGS.modes:
            call = lambda z: G(z, impl=FLAGS.impl)
            if mode == 'function':
                call = tf.function(call)
            elif mode == 'xla':
                if FLAGS.impl == 'custom':
                    continue                # XLA cannot compile the custom op.
                call = tf.function(call, jit_compile=True)
            seconds = time_calls(call, z, FLAGS.repeats)
            rows.append((arch, mode, FLAGS.batch / seconds, seconds / FLAGS.batch))
            print(f'{arch:12s} {mode:9s} {rows[-1][2]:8.3f} img/s {rows[-1][3]:8.3f} s/img', flush=True)
    print(f'\n| network | mode | images/s | s/img |  (batch {FLAGS.batch}, {FLAGS.resolution}^2, impl={FLAGS.impl})')
    print('|---|---|---|---|')
    for arch, mode, ips, spi in rows:
        print(f'| {arch} | {mode} | {ips:.3f} | {spi:.3f} |')


if __name__ == '__main__':
    app.run(main)
