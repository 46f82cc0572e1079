"""afgan-sticking: the paper's Figure 1 texture-sticking diagnostics as pictures.

    afgan-sticking --network models/ffhq --seed 0 --outdir out/sticking [--num 64] [--sigma 0.2] [--frames 128]

Writes central.png (the image at the central latent), average.png (average over a
latent neighbourhood: sharp = sticking), slices.png (the centre column over a latent
interpolation: horizontal streaks = sticking), and prints a JSON line with the
high-frequency energy ratio of the average (1 = as sharp as one image, 0 = fully blurred).
"""

import json
import os

from absl import app, flags
import numpy as np

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory or NVIDIA .pkl (path or URL).')
flags.DEFINE_integer('seed', 0, 'Seed of the central latent (and of the interpolation end: seed + 1).')
flags.DEFINE_integer('num', 64, 'Images in the neighbourhood average.')
flags.DEFINE_float('sigma', 0.2, 'Radius of the latent neighbourhood (std of z offsets).')
flags.DEFINE_integer('frames', 128, 'Frames of the interpolation for the slice picture.')
flags.DEFINE_float('trunc', 1.0, 'Truncation psi.')
flags.DEFINE_string('outdir', None, 'Output directory.')
flags.mark_flags_as_required(['network', 'outdir'])


def main(argv):
    del argv
    from afgan_tf import image_writing as images
    from afgan_tf.metrics import sticking
    if FLAGS.num < 2 or FLAGS.frames < 2:
        raise common.UsageError('--num and --frames must be >= 2')
    seeds = common.parse_seeds(f'{FLAGS.seed},{FLAGS.seed + 1}')
    G = common.load_generator(FLAGS.network)
    if G.c_dim:
        raise common.UsageError('conditional networks are not supported by afgan-sticking')
    generate = lambda z: G(z, truncation_psi=FLAGS.trunc).numpy()
    z0, z1 = common.seed_latents(seeds, G.z_dim)
    with common.output_dir(FLAGS.outdir) as outdir:
        average, central, ratio = sticking.neighborhood_average(generate, z0, FLAGS.num, FLAGS.sigma)
        images.save_image(outdir / 'central.png', images.to_uint8(central[np.newaxis])[0])
        images.save_image(outdir / 'average.png', images.to_uint8(average[np.newaxis])[0])
        strip = sticking.interpolation_slices(generate, z0, z1, FLAGS.frames)
        images.save_image(outdir / 'slices.png', images.to_uint8(strip[np.newaxis])[0])
    print(json.dumps({'network': str(FLAGS.network), 'seed': FLAGS.seed, 'num': FLAGS.num, 'sigma': FLAGS.sigma,
                      'hf_energy_ratio': round(ratio, 5), 'outdir': str(outdir)}))


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
