"""afgan-dataset: build a training dataset (zip of PNGs + dataset.json, NVIDIA's format).

    afgan-dataset --source fashion-mnist --dest data/fashion-mnist-32.zip --resolution 32
    afgan-dataset --source photos/ --dest data/photos-256.zip --resolution 256 --transform center-crop
    afgan-dataset --source photos/ --dest data/photos-256-tfr --resolution 256 --format tfrecord --shards 64

--source: a folder or zip of images, or 'fashion-mnist' (Debian package
dataset-fashion-mnist: `sudo apt-get install dataset-fashion-mnist`). Labels come from a
source's dataset.json (Fashion-MNIST: its classes) and must be class indices. Images are
converted to one channel count (--channels, default the majority) and the conversions
reported; corrupt images and decompression bombs are skipped and counted; differing sizes
without --resolution are refused. Bad input gives `error: ...` and exit 2.
"""

import json
import os

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('source', None, "Folder or zip of images, or 'fashion-mnist'.")
flags.DEFINE_string('dest', None, 'Output: a .zip (--format zip) or a directory (--format tfrecord).')
flags.DEFINE_enum('format', 'zip', ['zip', 'tfrecord'], 'zip: NVIDIA\'s format; tfrecord: sharded TFRecords.')
flags.DEFINE_integer('shards', 16, 'TFRecord shards (--format tfrecord).')
flags.DEFINE_integer('resolution', None, 'Output resolution (power of two); default: keep (must be square).')
flags.DEFINE_enum('transform', 'center-crop', ['center-crop', 'center-crop-wide', 'pad', 'resize'],
                  'How to bring images to --resolution.')
flags.DEFINE_integer('max-images', None, 'Use at most this many images.')
flags.DEFINE_alias('max_images', 'max-images')
flags.DEFINE_enum('channels', None, ['1', '3'], 'Convert every image to 1 (grey) or 3 (RGB) channels; default: '
                  'the majority of the source images.')
flags.DEFINE_bool('force', False, 'Overwrite --dest.')
flags.mark_flags_as_required(['source', 'dest'])


def main(argv):
    del argv
    from afgan_tf.training import dataset
    common.refuse_existing(FLAGS.dest, FLAGS.force)
    if FLAGS.source != 'fashion-mnist' and not os.path.exists(FLAGS.source):
        raise common.UsageError(f'--source {FLAGS.source} not found')
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.dest)), exist_ok=True)
    try:
        summary = dataset.convert(FLAGS.source, FLAGS.dest, FLAGS.resolution, FLAGS.transform,
                                  FLAGS['max-images'].value, channels=int(FLAGS.channels) if FLAGS.channels else None,
                                  format=FLAGS.format, shards=FLAGS.shards)
    except dataset.DatasetError as e:
        raise common.UsageError(str(e)) from None
    print(json.dumps(summary))


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
