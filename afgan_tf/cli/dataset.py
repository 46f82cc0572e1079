"""afgan-dataset: build a training dataset (zip of PNGs + dataset.json, NVIDIA's format).

    afgan-dataset --source fashion-mnist --dest data/fashion-mnist-32.zip --resolution 32
    afgan-dataset --source photos/ --dest data/photos-256.zip --resolution 256 --transform center-crop

--source: a folder or zip of images, or 'fashion-mnist' (Debian package
dataset-fashion-mnist: `sudo apt-get install dataset-fashion-mnist`). Labels come from a
source's dataset.json (Fashion-MNIST: its classes). Corrupt images and images with another
channel count are skipped and counted; differing sizes without --resolution are refused.
"""

import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('source', None, "Folder or zip of images, or 'fashion-mnist'.")
flags.DEFINE_string('dest', None, 'Output .zip.')
flags.DEFINE_integer('resolution', None, 'Output resolution (power of two); default: keep (must be square).')
flags.DEFINE_enum('transform', 'center-crop', ['center-crop', 'center-crop-wide', 'pad', 'resize'],
                  'How to bring images to --resolution.')
flags.DEFINE_integer('max_images', None, 'Use at most this many images.')
flags.DEFINE_bool('force', False, 'Overwrite --dest.')
flags.mark_flags_as_required(['source', 'dest'])


def main(argv):
    del argv
    from afgan_tf.training import dataset
    if os.path.exists(FLAGS.dest) and not FLAGS.force:
        raise common.UsageError(f'{FLAGS.dest} exists (use --force to overwrite it)')
    if FLAGS.source != 'fashion-mnist' and not os.path.exists(FLAGS.source):
        raise common.UsageError(f'--source {FLAGS.source} not found')
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.dest)), exist_ok=True)
    try:
        summary = dataset.convert(FLAGS.source, FLAGS.dest, FLAGS.resolution, FLAGS.transform, FLAGS.max_images)
    except dataset.DatasetError as e:
        raise common.UsageError(str(e)) from None
    print(json.dumps(summary))


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
