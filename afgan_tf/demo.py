"""Demo: build a generator, write sample grids, print throughput.

    python -m afgan_tf.demo --outdir out/demo [--arch stylegan3-t] [--resolution 64]

With ``--reference DIR`` (e.g. ../shared/reference/stylegan3-t_32) the weights of a
network exported from NVIDIA's code are loaded (meta.json + G.npz) and the images are
checked against that implementation's own output (io.npz); the max abs error is
printed. Otherwise a randomly initialised network is used. Writes ``grid.png`` and,
for StyleGAN3, ``grid_translated_rotated.png`` (the same latents with the input
transform: translate (0.1, -0.05), rotate 10 degrees).
"""

import json
import os
import pathlib
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags
import numpy as np

import afgan_tf
from afgan_tf import image_writing as images, nvidia
from afgan_tf.transforms import make_transform

FLAGS = flags.FLAGS
flags.DEFINE_string('outdir', 'out/demo', 'Where to write the PNG grids.')
flags.DEFINE_enum('arch', 'stylegan3-t', sorted(afgan_tf.PRESETS), 'Architecture (random init).')
flags.DEFINE_integer('resolution', 64, 'Resolution (random init).')
flags.DEFINE_string('reference', None, 'Folder with meta.json / G.npz / io.npz of a reference network.')
flags.DEFINE_integer('num', 16, 'Number of images.')
flags.DEFINE_integer('seed', 0, 'Seed of the latents.')
flags.DEFINE_float('trunc', 1.0, 'Truncation psi.')


def main(_):
    outdir = pathlib.Path(FLAGS.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if FLAGS.reference:
        ref = pathlib.Path(FLAGS.reference)
        meta = json.loads((ref / 'meta.json').read_text())
        G = nvidia.generator_from_state_dict(meta['architecture'], meta['generator_kwargs'],
                                             dict(np.load(ref / 'G.npz')))
        io = np.load(ref / 'io.npz')
        err = np.max(np.abs(G.synthesis(io['ws']).numpy() - np.transpose(io['img'], (0, 2, 3, 1))))
        print(f'max abs error vs the reference implementation: {err:.2e}')
    else:
        G = afgan_tf.Generator(FLAGS.arch, z_dim=512, w_dim=512, img_resolution=FLAGS.resolution,
                               channel_base=8192, channel_max=256, seed=FLAGS.seed)
    z = np.random.default_rng(FLAGS.seed).standard_normal([FLAGS.num, G.z_dim]).astype(np.float32)
    start = time.perf_counter()
    img = G(z, truncation_psi=FLAGS.trunc)
    seconds = time.perf_counter() - start
    images.save_image_grid(outdir / 'grid.png', img)
    print(f'{G.architecture} {G.img_resolution}x{G.img_resolution}: {FLAGS.num} images in {seconds:.2f} s '
          f'({FLAGS.num / seconds:.1f} img/s) -> {outdir / "grid.png"}')
    if G.preset.accepts_transform:
        ws = G.mapping(z, truncation_psi=FLAGS.trunc)
        moved = G.synthesis(ws, transform=make_transform((0.1, -0.05), 10))
        images.save_image_grid(outdir / 'grid_translated_rotated.png', moved)
        print(f'same latents, translated and rotated -> {outdir / "grid_translated_rotated.png"}')


if __name__ == '__main__':
    app.run(main)
