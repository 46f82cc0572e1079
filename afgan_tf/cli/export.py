"""afgan-export: write a generator as a SavedModel for TensorFlow Serving, or as TFLite / ONNX.

    afgan-export --network models/ffhq --outdir serving/stylegan3 [--version 1] [--force]
    afgan-export --network models/ffhq --outdir mobile --format tflite [--batch 1] [--float16]
    afgan-export --network models/ffhq --outdir onnx --format onnx [--batch 1]

savedmodel (default): writes serving/stylegan3/<version>/ (TF Serving's layout) with the signatures
serving_default, transformed (StyleGAN3), mapping and synthesis; stock TF ops only.
tflite / onnx: writes <outdir>/generator[-fp16].tflite or <outdir>/generator.onnx, one function
z [N, z_dim], truncation_psi [] (and c) -> images uint8 [N, H, W, C]; --batch fixes N (default free).
"""

import os

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory or NVIDIA .pkl (path or URL).')
flags.DEFINE_string('outdir', None, 'Model base directory (the version goes below it).')
flags.DEFINE_integer('version', 1, 'Model version (a positive integer).')
flags.DEFINE_enum('which', 'G_ema', ['G_ema', 'G'], 'Which generator to export.')
flags.DEFINE_enum('format', 'savedmodel', ['savedmodel', 'tflite', 'onnx'], 'What to write.')
flags.DEFINE_integer('batch', None, 'tflite/onnx: fixed batch size (default: dynamic).')
flags.DEFINE_bool('float16', False, 'tflite: store the weights as float16 (about half the file).')
flags.DEFINE_bool('force', False, 'Replace an existing version directory or model file.')
flags.mark_flags_as_required(['network', 'outdir'])


def main(argv):
    del argv
    if FLAGS.format != 'savedmodel':
        return portable(FLAGS.format)
    if FLAGS.batch is not None or FLAGS.float16:
        raise common.UsageError('--batch and --float16 apply to --format tflite/onnx only')
    from afgan_tf.export import export_generator
    if FLAGS.version < 1:
        raise common.UsageError(f'--version must be a positive integer, got {FLAGS.version}')
    if os.path.exists(FLAGS.outdir) and not os.path.isdir(FLAGS.outdir):
        raise common.UsageError(f'--outdir {FLAGS.outdir} is a file, not a directory')
    target = os.path.join(FLAGS.outdir, str(FLAGS.version))
    if os.path.exists(target) and not os.path.isdir(target):
        raise common.UsageError(f'{target} is a file, not a model version directory')
    common.refuse_existing(target, FLAGS.force)
    _check_writable(FLAGS.outdir)
    G = common.load_generator(FLAGS.network, FLAGS.which)
    path = export_generator(G, FLAGS.outdir, FLAGS.version, force=FLAGS.force)
    print(f'exported {G.architecture} {G.img_resolution}x{G.img_resolution} generator -> {path}')


MAX_BATCH = 4096        # A fixed batch beyond this is no mobile or ONNX model anyone runs.


def _check_writable(outdir):
    """UsageError now, before a conversion that takes minutes, if ``outdir`` cannot be created or written."""
    import tempfile
    probe_dir = os.path.abspath(outdir)
    while not os.path.exists(probe_dir) and os.path.dirname(probe_dir) != probe_dir:
        probe_dir = os.path.dirname(probe_dir)
    if not os.path.isdir(probe_dir):
        raise common.UsageError(f'--outdir {outdir}: {probe_dir} is not a directory')
    try:
        fd, name = tempfile.mkstemp(dir=probe_dir, prefix='.afgan-export-probe')
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise common.UsageError(f'--outdir {outdir}: cannot write in {probe_dir} ({e.strerror})') from None


def portable(fmt):
    from afgan_tf.export import portable as portable_export
    if FLAGS.batch is not None and not 1 <= FLAGS.batch <= MAX_BATCH:
        raise common.UsageError(f'--batch must be an integer in [1, {MAX_BATCH}], got {FLAGS.batch}')
    if FLAGS.float16 and fmt != 'tflite':
        raise common.UsageError('--float16 applies to --format tflite only')
    if os.path.exists(FLAGS.outdir) and not os.path.isdir(FLAGS.outdir):
        raise common.UsageError(f'--outdir {FLAGS.outdir} is a file, not a directory')
    name = 'generator.onnx' if fmt == 'onnx' else f'generator{"-fp16" if FLAGS.float16 else ""}.tflite'
    target = os.path.join(FLAGS.outdir, name)
    common.refuse_existing(target, FLAGS.force)
    _check_writable(FLAGS.outdir)
    G = common.load_generator(FLAGS.network, FLAGS.which)
    if fmt == 'onnx':
        try:
            path = portable_export.export_onnx(G, target, batch=FLAGS.batch)
        except ImportError as e:
            raise common.UsageError(str(e)) from e
    else:
        path = portable_export.export_tflite(G, target, batch=FLAGS.batch, float16=FLAGS.float16)
    batch = FLAGS.batch or 'dynamic'
    print(f'exported {G.architecture} {G.img_resolution}x{G.img_resolution} generator -> {path} '
          f'({fmt}, batch {batch}, {os.path.getsize(path) / 2 ** 20:.2f} MiB)')


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
