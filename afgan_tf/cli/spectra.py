"""afgan-spectra: average power spectra of datasets and generators, side by side.

    afgan-spectra --source data/ffhq.zip --source models/ffhq-t --outdir out/spectra [--num 1000]

Each --source is a dataset (folder or zip of images) or a network (project directory,
training run directory or NVIDIA .pkl; --num images from seeds 0..num-1). Writes <label>.npz (spectrum,
image_size), heatmaps.png (dB heatmaps side by side) and slices.png (0 and 45 degree
slices of all sources). Whitening uses --mean/--std, by default the pixel statistics of
the first source.
"""

import json
import os
import pathlib

from absl import app, flags
import numpy as np

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_multi_string('source', None, 'Dataset folder/zip or network (repeatable).')
flags.DEFINE_integer('num', 1000, 'Images per source (datasets: at most).')
flags.DEFINE_float('mean', None, 'Pixel mean for whitening (default: first source).')
flags.DEFINE_float('std', None, 'Pixel std for whitening (default: first source).')
flags.DEFINE_float('trunc', 1.0, 'Truncation psi for networks.')
flags.DEFINE_float('smooth', 1.25, 'Smoothing of the heatmaps (0 = none).')
flags.DEFINE_string('outdir', None, 'Output directory.')
flags.mark_flags_as_required(['source', 'outdir'])


def _is_network(path):
    from afgan_tf import network_io
    p = pathlib.Path(path)
    return str(path).endswith('.pkl') or (p.is_dir() and (network_io.is_network_dir(p) or network_io.is_run_dir(p)))


def _batches(source, num, batch=16):
    """Yields uint8 NHWC batches of one source."""
    from afgan_tf import image_reading
    from afgan_tf import image_writing as images
    if _is_network(source):
        G = common.load_generator(source)
        for i in range(0, num, batch):
            z = common.seed_latents(range(i, min(i + batch, num)), G.z_dim)
            yield images.to_uint8(G(z, truncation_psi=FLAGS.trunc).numpy())
        return
    try:
        names = image_reading.list_images(source)
    except (FileNotFoundError, ValueError) as e:
        raise common.UsageError(str(e)) from None
    if not names:
        raise common.UsageError(f'{source} contains no images')
    chunk = []
    for _, img in image_reading.iterate_images(source, num):
        if chunk and img.shape != chunk[0].shape:
            raise common.UsageError(f'{source}: images of different sizes ({img.shape} vs {chunk[0].shape})')
        chunk.append(img)
        if len(chunk) == batch:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


def main(argv):
    del argv
    from afgan_tf.metrics import spectra
    from PIL import Image
    labels = [pathlib.Path(s.rstrip('/')).stem for s in FLAGS.source]
    if len(set(labels)) != len(labels):
        labels = [f'{i}_{label}' for i, label in enumerate(labels)]
    mean, std = FLAGS.mean, FLAGS.std
    results = {}
    with common.output_dir(FLAGS.outdir) as outdir:
        for source, label in zip(FLAGS.source, labels):
            acc = None
            progress = common.Progress(FLAGS.num, label)
            for batch in _batches(source, FLAGS.num):
                if mean is None or std is None:
                    mean, std = spectra.pixel_moments(batch)
                if acc is None:
                    if batch.shape[1] != batch.shape[2]:
                        raise common.UsageError(f'{source}: images must be square, got {batch.shape[1:3]}')
                    acc = spectra.SpectrumAccumulator(batch.shape[1], mean, std)
                acc.add(batch)
                progress.update(len(batch))
            progress.close()
            spectrum = acc.result()
            np.savez(outdir / f'{label}.npz', spectrum=spectrum, image_size=acc.image_size, mean=mean, std=std)
            results[label] = (spectrum, acc.image_size)
        sizes = {size for _, size in results.values()}
        if len(sizes) > 1:
            raise common.UsageError(f'sources have different resolutions {sorted(sizes)}')
        hmaps = {label: spectra.heatmap_db(s, size, FLAGS.smooth) for label, (s, size) in results.items()}
        tiles = [spectra.colorize(h) for h in hmaps.values()]
        gap = np.full([tiles[0].shape[0], 8, 3], 255, np.uint8)
        row = np.concatenate([t if i == 0 else np.concatenate([gap, t], 1) for i, t in enumerate(tiles)], 1)
        Image.fromarray(row).save(outdir / 'heatmaps.png')
        size = sizes.pop()
        cut = {label: spectra.slices(h, size) for label, h in hmaps.items()}
        spectra.plot_lines(outdir / 'slices_0deg.png', {k: v[0] for k, v in cut.items()}, title='0 degree slice (dB)',
                           xlabel='frequency (cycles / image)')
        spectra.plot_lines(outdir / 'slices_45deg.png', {k: v[1] for k, v in cut.items()},
                           title='45 degree slice (dB)', xlabel='frequency (cycles / image)')
    print(json.dumps({'sources': dict(zip(labels, FLAGS.source)), 'mean': mean, 'std': std,
                      'outdir': str(FLAGS.outdir)}))


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
