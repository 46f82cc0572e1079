"""The streaming input pipeline: memory that does not grow with the dataset, and its speed.

    python benchmarks/bench_input.py [--sizes 2000,20000] [--resolution 128] [--workdir /tmp/bench_input]

1. Writes synthetic datasets (smooth random RGB images, NVIDIA's zip format) of each size.
2. Runs a short afgan-train on each (StyleGAN3-T, the README demo's capacity, --kimg a few steps) in
   a fresh process (--repeats times) and prints its peak RSS (wait4's ru_maxrss), and the difference
   between sizes. The runs use one inter-op thread (see STEADY), so that the peak repeats.
3. Times the input pipeline alone (shuffled, x-flipped, decoded, batched; after a warm-up) in
   images/s, and compares it with the images/s the training step consumed (from the training
   run's sec/kimg at the same resolution).
Prints figures; asserts nothing.
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic import write_dataset  # noqa: E402


# The peak RSS of a training step varies by some 450 MiB from run to run with TensorFlow's default
# inter-op thread pool (independent ops hold their buffers at the same time in an order that changes
# between runs) and glibc's per-thread malloc arenas. One inter-op thread and two arenas make it
# repeatable to some 50 MiB, so that what the dataset size adds can be seen.
STEADY = dict(TF_NUM_INTEROP_THREADS='1', MALLOC_ARENA_MAX='2')


def train_rss(data, outdir, steps, batch):
    """(peak RSS in MiB, sec/kimg of the last progress line) of a short afgan-train in a fresh process."""
    args = [sys.executable, '-m', 'afgan_tf.cli.train', f'--outdir={outdir}', '--cfg=stylegan3-t', f'--data={data}',
            f'--batch={batch}', '--gamma=0.5', '--cbase=2048', '--cmax=64', '--snap=1000', '--log-every=1',
            f'--tick={steps * batch / 1000}', f'--kimg={steps * batch / 1000}', '--aug=noaug']
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(
        os.environ, **STEADY))
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
    parser.add_argument('--repeats', type=int, default=2, help='Training runs per size (each peak is printed).')
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
        peaks = []
        for repeat in range(args.repeats):
            peak, sec_per_kimg = train_rss(data, work / f'runs-{count}', args.steps, args.batch)
            peaks.append(peak)
            step_rate = max(step_rate or 0, 1000 / sec_per_kimg)
            print(f'  afgan-train peak RSS {peak:.0f} MiB; training step {sec_per_kimg:.0f} sec/kimg '
                  f'= {1000 / sec_per_kimg:.2f} img/s', flush=True)
        rss[count] = float(np.mean(peaks))
    rate = input_rate(work / f'synthetic-{sizes[-1]}-{args.resolution}.zip', 32, 2048)
    print(f'\n| dataset | peak RSS of afgan-train (mean of {args.repeats}; {STEADY}) |\n|---|---|')
    for count in sizes:
        print(f'| {count} images {args.resolution}x{args.resolution}x3 | {rss[count]:.0f} MiB |')
    print(f'\nRSS difference {sizes[-1]} vs {sizes[0]} images: {rss[sizes[-1]] - rss[sizes[0]]:+.0f} MiB')
    print(f'input pipeline alone: {rate:.0f} img/s; the training step consumes {step_rate:.2f} img/s; '
          f'ratio {rate / step_rate:.0f}x')


if __name__ == '__main__':
    main()
