"""afgan-project: find the w (or w+) that reproduces an image (StyleGAN2 paper, section 5).

    afgan-project --network runs/00000-... --target photo.png --outdir out/proj [--num-steps 1000]
                  [--space w|w+] [--seed 0] [--vgg16 vgg16.h5] [--save-video]

Writes projected_w.npz (key 'w': [1, num_ws, w_dim], for afgan-generate --w-file), proj.png
(target | projection side by side), target.png, optionally proj.mp4/.gif (the optimisation), and
prints a JSON line with the final distance, PSNR, seconds and the distance used.
"""

import json
import os

from absl import app, flags
import numpy as np

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: run dir, project network dir, or NVIDIA .pkl.')
flags.DEFINE_string('target', None, 'Target image file.')
flags.DEFINE_string('outdir', None, 'Output directory.')
flags.DEFINE_integer('num-steps', 1000, 'Optimisation steps.')
flags.DEFINE_enum('space', 'w', ['w', 'w+'], 'Optimise one w (broadcast to all layers) or one per layer.')
flags.DEFINE_integer('seed', 0, 'Seed.')
flags.DEFINE_string('vgg16', None, 'Keras VGG16 weights (with top): LPIPS-style distance. Default: FID Inception '
                    'multi-scale features + pixel term.')
flags.DEFINE_string('inception', None, 'FID Inception weights (default: cache, downloaded once).')
flags.DEFINE_float('pixel-weight', 1000.0, 'Weight of the pixel MSE term of the Inception distance.')
flags.DEFINE_bool('save-video', False, 'Write the optimisation as a video (GIF without the [video] extra).')
flags.DEFINE_integer('w-avg-samples', 10000, 'Latents used for w_avg / w_std.')
flags.mark_flags_as_required(['network', 'target', 'outdir'])


def _read_target(path):
    from PIL import Image, UnidentifiedImageError
    if not os.path.isfile(path):
        raise common.UsageError(f'--target: no such file {path}')
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ('L', 'RGB', 'RGBA'):
                img = img.convert('RGB')
            return np.asarray(img)
    except (UnidentifiedImageError, OSError) as e:
        raise common.UsageError(f'--target: {path} is not an image ({e})') from None


def main(argv):
    del argv
    import sys
    from afgan_tf import image_writing as images, projector
    steps = FLAGS['num-steps'].value
    if steps < 1:
        raise common.UsageError('--num-steps must be >= 1')
    raw = _read_target(FLAGS.target)
    G = common.load_generator(FLAGS.network)
    log = lambda m: print(m, file=sys.stderr)
    try:
        target = projector.prepare_target(raw, G.img_resolution, G.img_channels, log=log)
    except ValueError as e:
        raise common.UsageError(str(e)) from None
    try:
        distance = projector.Vgg16Distance(FLAGS.vgg16) if FLAGS.vgg16 else \
            projector.InceptionDistance(FLAGS.inception, pixel_weight=FLAGS['pixel-weight'].value, log=log)
    except (FileNotFoundError, ValueError) as e:
        raise common.UsageError(str(e)) from None
    log(f'distance: {distance.name}')
    bar = common.Progress(steps, 'projecting')
    video = FLAGS['save-video'].value
    result = projector.project(G, target, distance, num_steps=steps, space=FLAGS.space, seed=FLAGS.seed,
                               w_avg_samples=FLAGS['w-avg-samples'].value, snapshot_every=1 if video else 0,
                               progress=lambda i, n, h: bar.update(1))
    target_f = target[np.newaxis].astype(np.float32) / 127.5 - 1
    with common.output_dir(FLAGS.outdir) as outdir:
        np.savez(outdir / 'projected_w.npz', w=result['w'][np.newaxis].astype(np.float32),
                 **result['noise'])
        images.save_image(outdir / 'target.png', target)
        images.save_image_grid(outdir / 'proj.png', np.concatenate([target_f, result['image']]), grid=(2, 1))
        if video:
            frames = [images.image_grid(np.stack([target_f[0], s]), grid=(2, 1)) for s in result['snapshots']]
            write, close, _ = common.video_writer(outdir / 'proj.mp4', 30)
            for f in frames:
                write(f if f.shape[-1] == 3 else np.repeat(f, 3, axis=-1))
            close()
    line = {'distance': result['history'][-1]['distance'], 'psnr': projector.psnr(result['image'], target_f),
            'seconds': round(result['seconds'], 2), 'steps': steps, 'space': FLAGS.space, 'metric': distance.name,
            'outdir': str(outdir)}
    (outdir / 'result.json').write_text(json.dumps(line))
    print(json.dumps(line))


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
