"""The streaming input pipeline: memory that does not grow with the dataset, and its speed.

    python benchmarks/bench_input.py [--sizes 2000,20000] [--resolution 128] [--workdir /tmp/bench_input]

1. Writes synthetic datasets (smooth random RGB images, NVIDIA's zip format) of each size.
2. Runs a short afgan-train on each (StyleGAN3-T, the README demo's capacity, --kimg a few steps) in
   a fresh process and prints its peak RSS (wait4's ru_maxrss), and the difference between sizes.
3. Times the input pipeline alone (shuffled, x-flipped, decoded, batched; after a warm-up) in
   images/s, and compares it with the images/s the training step consumed (from the training
   run's sec/kimg at the same resolution).
Prints figures; asserts nothing.
"""

import argparse
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import zipfile

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def write_dataset(path, count, resolution, seed=0):
    """A zip of ``count`` smooth random RGB PNGs (uncompressed, as afgan-dataset writes them)."""
    from PIL import Image
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix('.tmp')
    with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED) as z:
        names = []
        for i in range(count):
            small = rng.integers(0, 256, [8, 8, 3], dtype=np.uint8)
            img = Image.fromarray(small).resize((resolution, resolution), Image.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, format='png', compress_level=0)
            name = f'{i // 1000:05d}/img{i:08d}.png'
            z.writestr(name, buf.getvalue())
            names.append(name)
        z.writestr('dataset.json', json.dumps({'labels': None}))
    tmp.replace(path)
    return path


def train_rss(data, outdir, steps, batch):
    """(peak RSS in MiB, sec/kimg of the last progress line) of a short afgan-train in a fresh process."""
    args = [sys.executable, '-m', 'afgan_tf.cli.train', f'--outdir={outdir}', '--cfg=stylegan3-t', f'--data={data}',
            f'--batch={batch}', '--gamma=0.5', '--cbase=2048', '--cmax=64', '--snap=1000', '--log-every=1',
            f'--tick={steps * batch / 1000}', f'--kimg={steps * batch / 1000}', '--aug=noaug']
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f'training failed:\n{output[-3000:]}')
    rates = [float(m) for m in re.findall(r'sec/kimg\s+([\d.]+)', output)]
    return usage.ru_maxrss / 1024, rates[-1] if rates else float('nan')


def input_rate(data, batch, images):
    """Images per second of the training input pipeline alone (shuffle, decode, x-flip, batch)."""
    from afgan_tf.training import dataset
    ds = iter(dataset.make_dataset(data, batch, xflip=True, seed=0))
    for _ in range(5):
        next(ds)
    start = time.perf_counter()
    seen = 0
    while seen < images:
        next(ds).numpy()
        seen += batch
    return seen / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='2000,20000')
    parser.add_argument('--resolution', type=int, default=128)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3, help='Training steps per run (after tracing).')
    parser.add_argument('--workdir', default='/tmp/bench_input')
    args = parser.parse_args()
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(',')]
    rss, step_rate = {}, None
    for count in sizes:
        start = time.perf_counter()
        data = write_dataset(work / f'synthetic-{count}-{args.resolution}.zip', count, args.resolution)
        print(f'{count} images {args.resolution}x{args.resolution}x3: {data} ({data.stat().st_size / 2 ** 20:.0f} MiB, '
              f'{time.perf_counter() - start:.0f} s)', flush=True)
        rss[count], sec_per_kimg = train_rss(data, work / f'runs-{count}', args.steps, args.batch)
        step_rate = 1000 / sec_per_kimg
        print(f'  afgan-train peak RSS {rss[count]:.0f} MiB; training step {sec_per_kimg:.0f} sec/kimg '
              f'= {step_rate:.2f} img/s', flush=True)
    rate = input_rate(work / f'synthetic-{sizes[-1]}-{args.resolution}.zip', 32, 2048)
    print(f'\n| dataset | peak RSS of afgan-train |\n|---|---|')
    for count in sizes:
        print(f'| {count} images | {rss[count]:.0f} MiB |')
    print(f'\nRSS difference {sizes[-1]} vs {sizes[0]} images: {rss[sizes[-1]] - rss[sizes[0]]:+.0f} MiB')
    print(f'input pipeline alone: {rate:.0f} img/s; the training step consumes {step_rate:.2f} img/s; '
          f'ratio {rate / step_rate:.0f}x')


if __name__ == '__main__':
    main()
