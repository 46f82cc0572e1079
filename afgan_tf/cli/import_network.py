"""afgan-import: convert an NVIDIA network pickle to the project's network format.

    afgan-import --pkl stylegan3-t-ffhq-1024x1024.pkl --out models/ffhq-t [--force]

The pickle is read without PyTorch and without executing anything it contains
(afgan_tf.torch_pickle). The output directory holds networks.json and Keras weights,
which every afgan_tf tool accepts as --network.
"""

import os

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('pkl', None, 'Network pickle: path or http(s) URL.')
flags.DEFINE_string('out', None, 'Output directory (must not exist unless --force).')
flags.DEFINE_bool('force', False, 'Replace an existing output directory.')
flags.mark_flags_as_required(['pkl', 'out'])


def main(argv):
    del argv
    import pickle
    from afgan_tf import network_io, nvidia, torch_pickle
    common.refuse_existing(FLAGS.out, FLAGS.force)
    try:
        data = nvidia.load_network_pkl(FLAGS.pkl)
    except FileNotFoundError:
        raise common.UsageError(f'{FLAGS.pkl} not found') from None
    except torch_pickle.UnsafePickleError as e:
        raise common.UsageError(str(e)) from None
    except (pickle.UnpicklingError, ValueError) as e:
        raise common.UsageError(f'cannot import {FLAGS.pkl}: {e}') from None
    models = {k: data[k] for k in network_io.MODEL_NAMES if k in data}
    extras = {k: data[k] for k in ('architecture', 'augment_p', 'augment_kwargs', 'training_set_kwargs')}
    extras['source'] = str(FLAGS.pkl)
    network_io.save_network(FLAGS.out, models, extras=extras, overwrite=FLAGS.force)
    G = data.get('G_ema', data.get('G'))
    desc = f'{data["architecture"]} {G.img_resolution}x{G.img_resolution}x{G.img_channels}' if G is not None else ''
    print(f'imported {", ".join(models)} ({desc}) -> {FLAGS.out}')


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
