"""afgan-export: write a generator as a SavedModel for TensorFlow Serving.

    afgan-export --network models/ffhq --outdir serving/stylegan3 [--version 1] [--force]

Writes serving/stylegan3/<version>/ (TF Serving's layout) with the signatures
serving_default, transformed (StyleGAN3), mapping and synthesis; stock TF ops only.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory or NVIDIA .pkl (path or URL).')
flags.DEFINE_string('outdir', None, 'Model base directory (the version goes below it).')
flags.DEFINE_integer('version', 1, 'Model version (a positive integer).')
flags.DEFINE_enum('which', 'G_ema', ['G_ema', 'G'], 'Which generator to export.')
flags.DEFINE_bool('force', False, 'Replace an existing version directory.')
flags.mark_flags_as_required(['network', 'outdir'])


def main(argv):
    del argv
    from afgan_tf.export import export_generator
    if FLAGS.version < 1:
        raise common.UsageError(f'--version must be a positive integer, got {FLAGS.version}')
    if os.path.exists(FLAGS.outdir) and not os.path.isdir(FLAGS.outdir):
        raise common.UsageError(f'--outdir {FLAGS.outdir} is a file, not a directory')
    target = os.path.join(FLAGS.outdir, str(FLAGS.version))
    if os.path.exists(target) and not os.path.isdir(target):
        raise common.UsageError(f'{target} is a file, not a model version directory')
    common.refuse_existing(target, FLAGS.force)
    G = common.load_generator(FLAGS.network, FLAGS.which)
    path = export_generator(G, FLAGS.outdir, FLAGS.version, force=FLAGS.force)
    print(f'exported {G.architecture} {G.img_resolution}x{G.img_resolution} generator -> {path}')


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
