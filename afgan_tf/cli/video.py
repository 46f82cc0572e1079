"""afgan-video: latent interpolation video.

    afgan-video --network models/ffhq --seeds 0-3 --out out/lerp.mp4 [--frames 60] [--grid 2x1]
                [--translate-speed 0.02,0] [--rotate-speed 5] [--trunc 0.7] [--fps 30]

Loops through the seeds with cubic interpolation in W (as NVIDIA's gen_video.py does);
--grid shows several interpolations at once: the seeds (a multiple of the cells) fill
the cells of each keyframe in turn.
StyleGAN3 networks can also move slowly: translation (image fractions per second) and
rotation (degrees per second). MP4 needs an encoder (pip install imageio imageio-ffmpeg);
without one, an .mp4 request falls back to an animated .gif next to it. .gif and .webp
are written with Pillow.
"""

import os
import pathlib

from absl import app, flags
import numpy as np

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory or NVIDIA .pkl (path or URL).')
flags.DEFINE_string('seeds', '0-3', 'Seeds to loop through.')
flags.DEFINE_integer('frames', 60, 'Frames per transition.')
flags.DEFINE_string('grid', '1x1', 'Grid COLSxROWS of simultaneous interpolations.')
flags.DEFINE_float('trunc', 1.0, 'Truncation psi.')
flags.DEFINE_string('translate-speed', '0,0', 'Translation per second x,y (StyleGAN3).')
flags.DEFINE_float('rotate-speed', 0.0, 'Rotation per second in degrees (StyleGAN3).')
flags.DEFINE_integer('fps', 30, 'Frames per second.')
flags.DEFINE_string('out', None, 'Output video: .mp4, .gif or .webp.')
flags.DEFINE_bool('force', False, 'Overwrite an existing output file.')
flags.mark_flags_as_required(['network', 'out'])


def interpolate_ws(ws, frames):
    """Cubic, looping interpolation of keyframes ws [K, ...] -> [K * frames, ...]."""
    import scipy.interpolate
    k = len(ws)
    if k == 1:
        return np.repeat(ws, frames * k, axis=0)
    wrapped = np.concatenate([ws[-2:], ws, ws[:2]])            # Wrap around for a seamless loop.
    x = np.arange(-2, k + 2)
    curve = scipy.interpolate.interp1d(x, wrapped, kind='cubic', axis=0)
    return curve(np.arange(k * frames) / frames).astype(np.float32)


def main(argv):
    del argv
    from afgan_tf import image_writing as images
    from afgan_tf.transforms import make_transform
    out = pathlib.Path(FLAGS.out)
    common.refuse_existing(out, FLAGS.force)
    if FLAGS.frames < 1 or FLAGS.fps < 1:
        raise common.UsageError('--frames and --fps must be >= 1')
    gw, gh = common.parse_grid(FLAGS.grid)
    seeds = common.parse_seeds(FLAGS.seeds)
    speed = common.parse_pair(FLAGS['translate-speed'].value, '--translate-speed')
    G = common.load_generator(FLAGS.network)
    moving = speed != (0, 0) or FLAGS['rotate-speed'].value != 0
    if moving and not G.preset.accepts_transform:
        raise common.UsageError(f'--translate-speed / --rotate-speed need a generator that accepts a transform '
                                f'(StyleGAN3), not {G.architecture}')
    cells = gw * gh
    if len(seeds) % cells:
        raise common.UsageError(f'the number of seeds ({len(seeds)}) must be a multiple of the grid cells ({cells})')
    keys = len(seeds) // cells
    z = common.seed_latents(seeds, G.z_dim).reshape(keys, cells, G.z_dim)
    ws = G.mapping(z.reshape(-1, G.z_dim), truncation_psi=FLAGS.trunc).numpy()
    ws = interpolate_ws(ws.reshape((keys, cells) + ws.shape[1:]), FLAGS.frames)   # [T, cells, num_ws, w_dim]
    out.parent.mkdir(parents=True, exist_ok=True)
    write, close, path = common.video_writer(out, FLAGS.fps)
    progress = common.Progress(len(ws), 'frames')
    try:
        for t, frame_ws in enumerate(ws):
            transform = None
            if moving:
                seconds = t / FLAGS.fps
                transform = make_transform((speed[0] * seconds, speed[1] * seconds), FLAGS['rotate-speed'].value * seconds)
            frame = G.synthesis(frame_ws, transform=transform).numpy()
            write(images.image_grid(frame, grid=(gw, gh)))
            progress.update()
        close()
    except BaseException:
        if path.exists():
            path.unlink()
        raise
    print(f'{len(ws)} frames ({gw}x{gh} grid, {len(seeds)} seeds) -> {path}')


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
