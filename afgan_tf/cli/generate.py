"""afgan-generate: images from a trained generator.

    afgan-generate --network models/ffhq --seeds 0-7 [--trunc 0.7] [--translate 0.1,0] [--rotate 10]
                   [--grid 4x2] --outdir out/
    afgan-generate --network models/ffhq --z-file z.npy --out imgs.npy [--layout nchw|nhwc]

PNG per seed (seedNNNN.png, latents drawn as NVIDIA's gen_images.py does) or one grid;
with --z-file, exact float outputs in [-1, 1] as .npy (NCHW like the reference by default).
"""

import os

from absl import app, flags
import numpy as np

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory or NVIDIA .pkl (path or URL).')
flags.DEFINE_string('seeds', None, 'Seeds, e.g. 0-7 or 1,5,10-12.')
flags.DEFINE_float('trunc', 1.0, 'Truncation psi.')
flags.DEFINE_string('translate', '0,0', 'Translation x,y of the output (StyleGAN3), in image fractions.')
flags.DEFINE_float('rotate', 0.0, 'Rotation of the output in degrees (StyleGAN3).')
flags.DEFINE_string('grid', None, 'Write one grid of COLSxROWS instead of one PNG per seed.')
flags.DEFINE_enum('noise-mode', 'const', ['const', 'random', 'none'], 'Noise mode (StyleGAN2).')
flags.DEFINE_integer('class-idx', None, 'Class label (conditional networks).')
flags.DEFINE_string('outdir', None, 'Output directory for PNGs.')
flags.DEFINE_string('z-file', None, '.npy of latents [N, z_dim] (instead of --seeds).')
flags.DEFINE_string('w-file', None, '.npz with w [N, num_ws, w_dim] (afgan-project output; instead of --seeds).')
flags.DEFINE_string('out', None, 'With --z-file: .npy file of float images.')
flags.DEFINE_enum('layout', 'nchw', ['nchw', 'nhwc'], 'Layout of --out.')
flags.DEFINE_string('direction', None, 'A latent direction FILE.npz:K of afgan-directions, applied in W at its layers.')
flags.DEFINE_float('strength', 0.0, 'How far along --direction to move (in units of the unit direction).')
flags.DEFINE_integer('batch', 8, 'Batch size.')


def _labels(G, n):
    if G.c_dim == 0:
        return None
    class_idx = FLAGS['class-idx'].value
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise common.UsageError(f'this network is conditional: --class-idx in [0, {G.c_dim}) is required')
    return np.eye(G.c_dim, dtype=np.float32)[[class_idx] * n]


def _transform(G):
    """The --translate / --rotate matrix, or None."""
    from afgan_tf.transforms import make_transform
    translate = common.parse_pair(FLAGS.translate, '--translate')
    if translate == (0, 0) and FLAGS.rotate == 0:
        return None
    if not G.preset.accepts_transform:
        raise common.UsageError(f'--translate / --rotate need a generator that accepts a transform (StyleGAN3), '
                                f'not {G.architecture}')
    return make_transform(translate, FLAGS.rotate)


def _direction(G):
    """(direction [w_dim], ws indices) of --direction FILE:K, or None."""
    from afgan_tf import directions
    if FLAGS.direction is None:
        if FLAGS.strength:
            raise common.UsageError('--strength needs --direction FILE.npz:K')
        return None
    path, sep, index = FLAGS.direction.rpartition(':')
    if not sep or not index.isdigit():
        raise common.UsageError(f'--direction must be FILE.npz:K (K the direction number), got {FLAGS.direction!r}')
    try:
        dirs = directions.load(path, G)
    except ValueError as e:
        raise common.UsageError(f'--direction: {e}') from None
    if int(index) >= len(dirs['directions']):
        raise common.UsageError(f'--direction {FLAGS.direction}: the file has {len(dirs["directions"])} directions')
    return dirs['directions'][int(index)], dirs['layers']


def synthesize(G, ws):
    """Images of ws ([N, num_ws, w_dim]) with --direction / --strength, --translate / --rotate and --noise-mode,
    in batches."""
    from afgan_tf import directions
    direction = _direction(G)
    if direction is not None:
        ws = directions.apply(ws, direction[0], direction[1], FLAGS.strength)
    transform = _transform(G)
    out = [G.synthesis(ws[i:i + FLAGS.batch], transform=transform, noise_mode=FLAGS['noise-mode'].value).numpy()
           for i in range(0, len(ws), FLAGS.batch)]
    return np.concatenate(out)


def generate(G, z, c=None):
    ws = [G.mapping(z[i:i + FLAGS.batch], None if c is None else c[i:i + FLAGS.batch], truncation_psi=FLAGS.trunc)
          for i in range(0, len(z), FLAGS.batch)]
    return synthesize(G, np.concatenate(ws))


def main(argv):
    del argv
    from afgan_tf import image_writing as images
    z_file, w_file = FLAGS['z-file'].value, FLAGS['w-file'].value
    if sum(x is not None for x in (FLAGS.seeds, z_file, w_file)) != 1:
        raise common.UsageError('give exactly one of --seeds, --z-file and --w-file')
    if w_file is not None:
        if FLAGS.outdir is None:
            raise common.UsageError('--w-file needs --outdir')
        try:
            ws = np.load(w_file)['w'].astype(np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise common.UsageError(f'--w-file {w_file}: not an .npz with a "w" array ({e})') from None
        G = common.load_generator(FLAGS.network)
        ws = ws[np.newaxis] if ws.ndim == 2 else ws
        if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
            raise common.UsageError(f'--w-file must hold w [N, {G.num_ws}, {G.w_dim}], got {list(ws.shape)}')
        with common.output_dir(FLAGS.outdir) as outdir:
            for i, im in enumerate(images.to_uint8(synthesize(G, ws))):
                images.save_image(outdir / f'proj{i:02d}.png', im)
        print(f'{len(ws)} images -> {outdir}/projNN.png')
        return
    if z_file is not None:
        if FLAGS.out is None:
            raise common.UsageError('--z-file needs --out (a .npy path)')
        if not os.path.isfile(z_file):
            raise common.UsageError(f'--z-file {z_file} not found')
        try:
            z = np.load(z_file)
        except ValueError as e:
            raise common.UsageError(f'--z-file {z_file} is not a .npy array: {e}') from None
        G = common.load_generator(FLAGS.network)
        if z.ndim != 2 or z.shape[1] != G.z_dim:
            raise common.UsageError(f'--z-file must hold [N, {G.z_dim}] latents, got shape {list(z.shape)}')
        img = generate(G, z.astype(np.float32), _labels(G, len(z)))
        if FLAGS.layout == 'nchw':
            img = np.transpose(img, (0, 3, 1, 2))
        np.save(FLAGS.out, img)
        print(f'{len(z)} images {list(img.shape)} ({FLAGS.layout}) -> {FLAGS.out}')
        return
    if FLAGS.outdir is None:
        raise common.UsageError('--seeds needs --outdir')
    seeds = common.parse_seeds(FLAGS.seeds)
    grid = common.parse_grid(FLAGS.grid) if FLAGS.grid else None
    if grid and grid[0] * grid[1] < len(seeds):
        raise common.UsageError(f'--grid {FLAGS.grid} has room for {grid[0] * grid[1]} images, got {len(seeds)} seeds')
    G = common.load_generator(FLAGS.network)
    img = generate(G, common.seed_latents(seeds, G.z_dim), _labels(G, len(seeds)))
    with common.output_dir(FLAGS.outdir) as outdir:
        if grid:
            images.save_image_grid(outdir / 'grid.png', img, grid=grid)
            print(f'{len(seeds)} images -> {outdir / "grid.png"}')
        else:
            for seed, im in zip(seeds, images.to_uint8(img)):
                images.save_image(outdir / f'seed{seed:04d}.png', im)
            print(f'{len(seeds)} images -> {outdir}/seedNNNN.png')


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
