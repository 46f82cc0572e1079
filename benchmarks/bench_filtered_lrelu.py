"""filtered_lrelu per synthesis layer: pure-TF reference path vs the fused custom op.

    python -m afgan_tf.custom_ops.build && python benchmarks/bench_filtered_lrelu.py

For every layer of full-size StyleGAN3-T and -R at 256^2 (batch 4), times forward and
forward+backward (tf.function, CPU), prints ms per call and the ratio, and the sums over
layers. Asserts nothing.

Two builds of the op, measured in one run (e.g. before / after a change of the build):

    python benchmarks/bench_filtered_lrelu.py \
        --compare_libs /tmp/old/afgan_filtered_lrelu.so,custom_ops/afgan_filtered_lrelu.so

times only the fused op of each library, each in its own process (one process cannot load
two libraries that register the same op), alternating for --rounds rounds, and prints the
best sums per library and their ratio.
"""

import json
import os
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags
import numpy as np
import tensorflow as tf

from afgan_tf import custom_ops, ops
from afgan_tf.stylegan3 import SynthesisNetwork

FLAGS = flags.FLAGS
flags.DEFINE_list('archs', ['stylegan3-t', 'stylegan3-r'], 'Architectures.')
flags.DEFINE_integer('resolution', 256, 'Image resolution.')
flags.DEFINE_integer('batch', 4, 'Batch size.')
flags.DEFINE_integer('repeats', 3, 'Timed calls (best is reported) after one warm-up.')
flags.DEFINE_list('impls', ['ref', 'custom'], 'Paths to time.')
flags.DEFINE_list('compare_libs', None, 'Op libraries to compare (fused op only), measured in one run.')
flags.DEFINE_integer('rounds', 2, 'Alternating rounds per library with --compare_libs.')
flags.DEFINE_bool('json', False, 'Print one JSON line of the sums (used by --compare_libs).')

ARCH_KWARGS = {'stylegan3-t': dict(channel_base=32768, channel_max=512),
               'stylegan3-r': dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)}


def best_ms(fn, *args):
    fn(*args)
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        out = fn(*args)
        for t in tf.nest.flatten(out):
            t.numpy()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def compare_libs():
    """Runs this script per library (fused op only), alternating; prints the best sums and ratios."""
    best = {}
    for round_ in range(FLAGS.rounds):
        for lib in FLAGS.compare_libs:
            env = dict(os.environ, AFGAN_TF_CUSTOM_OP_LIB=os.path.abspath(lib))
            out = subprocess.run([sys.executable, __file__, '--impls=custom', '--json', f'--repeats={FLAGS.repeats}',
                                  f'--batch={FLAGS.batch}', f'--resolution={FLAGS.resolution}',
                                  f'--archs={",".join(FLAGS.archs)}'], env=env, capture_output=True, text=True,
                                 check=True).stdout
            sums = json.loads(out.strip().splitlines()[-1])
            print(f'round {round_ + 1} {lib}: {sums}', flush=True)
            for key, value in sums.items():
                best[lib, key] = min(best.get((lib, key), float('inf')), value)
    first = FLAGS.compare_libs[0]
    print(f'\n| library | network | fused fwd ms (sum) | fused fwd+bwd ms (sum) |  (best of {FLAGS.rounds} rounds, '
          f'batch {FLAGS.batch}, {FLAGS.resolution}^2)')
    print('|---|---|---|---|')
    for lib in FLAGS.compare_libs:
        for arch in FLAGS.archs:
            f, b = best[lib, f'{arch} fwd'], best[lib, f'{arch} fwd+bwd']
            f0, b0 = best[first, f'{arch} fwd'], best[first, f'{arch} fwd+bwd']
            print(f'| {lib} | {arch} | {f:.1f} ({f / f0:.3f}x) | {b:.1f} ({b / b0:.3f}x) |')


def main(_):
    if FLAGS.compare_libs:
        return compare_libs()
    if 'custom' in FLAGS.impls and not custom_ops.is_available():
        raise SystemExit(f'custom op not built: {custom_ops.load_error()}')
    rng = np.random.default_rng(0)
    rows = []
    for arch in FLAGS.archs:
        net = SynthesisNetwork(w_dim=16, img_resolution=FLAGS.resolution, img_channels=3, **ARCH_KWARGS[arch])
        for name in net.layer_names:
            layer = getattr(net, name)
            s = layer.spec
            size = s['in_size'][0] + s['conv_kernel'] - 1
            x = tf.constant((rng.standard_normal([FLAGS.batch, size, size, s['out_channels']]) * 10).astype(np.float32))
            b = tf.constant(rng.standard_normal(s['out_channels']).astype(np.float32))
            kwargs = dict(fu=layer.up_filter, fd=layer.down_filter, up=s['up_factor'], down=s['down_factor'],
                          padding=s['padding'], gain=layer.gain, slope=layer.slope, clamp=s['conv_clamp'])
            dy = tf.constant(rng.standard_normal(ops.filtered_lrelu(x[:1], b=b, impl='ref', **kwargs).shape[1:])
                             .astype(np.float32))
            timings = {}
            for impl in FLAGS.impls:
                fwd = tf.function(lambda x, b, impl=impl: ops.filtered_lrelu(x, b=b, impl=impl, **kwargs))

                @tf.function
                def both(x, b, impl=impl):
                    # Returns y too, so that the forward pass cannot be pruned.
                    with tf.GradientTape() as tape:
                        tape.watch([x, b])
                        y = ops.filtered_lrelu(x, b=b, impl=impl, **kwargs)
                    return [y] + tape.gradient(y, [x, b], output_gradients=tf.broadcast_to(dy, tf.shape(y)))
                timings[impl] = (best_ms(fwd, x, b), best_ms(both, x, b))
            rows.append((arch, name, timings))
            if not FLAGS.json:
                print(f'{arch} {name:14s} ' + '   '.join(f'{impl}: fwd {t[0]:8.1f} ms, fwd+bwd {t[1]:8.1f} ms'
                                                         for impl, t in timings.items()), flush=True)
    if FLAGS.json:
        impl = FLAGS.impls[-1]
        print(json.dumps({f'{arch} {kind}': float(sum(r[2][impl][k] for r in rows if r[0] == arch))
                          for arch in FLAGS.archs for k, kind in enumerate(('fwd', 'fwd+bwd'))}))
        return
    if FLAGS.impls != ['ref', 'custom']:
        return
    print(f'\n| network | layer | ref fwd ms | custom fwd ms | ratio | ref fwd+bwd ms | custom fwd+bwd ms | ratio |'
          f'  (batch {FLAGS.batch}, {FLAGS.resolution}^2, CPU)')
    print('|---|---|---|---|---|---|---|---|')
    for arch in FLAGS.archs:
        arch_rows = [(r[1], *r[2]['ref'], *r[2]['custom']) for r in rows if r[0] == arch]
        for name, rf, rb, cf, cb in arch_rows:
            print(f'| {arch} | {name} | {rf:.1f} | {cf:.1f} | {rf / cf:.1f} | {rb:.1f} | {cb:.1f} | {rb / cb:.1f} |')
        rf, rb, cf, cb = np.sum([r[1:] for r in arch_rows], axis=0)
        print(f'| {arch} | **sum** | {rf:.1f} | {cf:.1f} | {rf / cf:.1f} | {rb:.1f} | {cb:.1f} | {rb / cb:.1f} |')


if __name__ == '__main__':
    app.run(main)
