"""Convergence on Fashion-MNIST: a small StyleGAN3-T trained for a fixed time, with an FID curve.

    pip install -e ".[plots]"
    python benchmarks/convergence.py [--minutes 120] [--metric fid10k_full] [--every 10] [--outdir runs/convergence]

1. Makes ``data/fashion-mnist-32.zip`` (all 60k training images, 32x32) if it is missing.
2. Trains the configuration of the README's convergence table (StyleGAN3-T, batch 8, gamma 0.5, cbase 2048,
   cmax 64: the demo's until the demo moved to a smaller, faster-learning one)
   for ``--minutes`` of training time (metric evaluation is not counted), with a checkpoint and
   ``--metric`` (default fid10k_full: 10k generated images against all 60k real ones) every
   ``--every`` kimg and at the end, written to ``metric-<name>.jsonl`` in the run directory.
   Run it again with the same ``--outdir`` to continue a stopped or finished run up to ``--minutes``
   of training in all (training resumes exactly; the curve goes on).
3. Draws ``docs/convergence.png`` (FID against kimg and against training minutes, matplotlib) and
   ``docs/convergence-grid.png`` (the final samples of fixed latents beside real images), and prints
   the curve as a Markdown table. ``--plot-only`` redraws from an existing run.
Prints figures; asserts nothing.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The configuration of the README's convergence table.
CONFIG = dict(cfg='stylegan3-t', batch=8, gamma=0.5, cbase=2048, cmax=64)


def make_dataset(path):
    if path.is_file():
        return
    print(f'writing {path} (all 60k Fashion-MNIST training images at 32x32)', flush=True)
    subprocess.run([sys.executable, '-m', 'afgan_tf.cli.dataset', '--source', 'fashion-mnist', '--dest', str(path),
                    '--resolution', '32'], check=True)


def train(args, data):
    """Trains (or continues) the run in args.outdir up to args.minutes of training in all."""
    from afgan_tf.training import RunDir, training_loop
    run = RunDir(pathlib.Path(args.outdir) / 'run')
    done_minutes = run.read_state().get('train_seconds', 0.0) / 60 if run.state_file.is_file() else 0.0
    left = args.minutes - done_minutes
    if left <= 0.05:
        print(f'{run.path} has trained {done_minutes:.1f} minutes (--minutes {args.minutes}): nothing to train')
        return run
    if run.options_file.is_file():
        options = run.read_options()
        print(f'continuing {run.path} after {done_minutes:.1f} training minutes', flush=True)
    else:
        options = training_options(args, data)
    options['minutes'] = left
    training_loop.train(options, run, log=lambda m: print(m, flush=True))
    return run


def training_options(args, data):
    from afgan_tf.training import training_loop
    # One tick = 1 kimg; a snapshot (checkpoint, sample grid, metric) every --every ticks.
    return training_loop.training_options(data=str(data), seed=args.seed, kimg=100000, tick=1, snap=args.every,
                                          metrics=args.metric, metrics_at='snapshot', log_every=100, **CONFIG)


def read_curve(run, metric):
    path = run.path / f'metric-{metric}.jsonl'
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # A continued run may evaluate its last snapshot again: keep one row per kimg.
    return sorted({round(r['kimg'], 3): r for r in rows}.values(), key=lambda r: r['kimg'])


def plot(run, metric, docs, data):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image
    from afgan_tf import image_writing
    from afgan_tf.training import dataset
    rows = read_curve(run, metric)
    if not rows:
        print(f'no {metric} results in {run.path} yet')
        return rows
    docs.mkdir(parents=True, exist_ok=True)
    kimg = [r['kimg'] for r in rows]
    minutes = [r.get('train_minutes', np.nan) for r in rows]
    value = [r['value'] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, x, label in ((axes[0], kimg, 'kimg (thousands of real images shown to D)'),
                         (axes[1], minutes, 'training minutes (2-core CPU; metric time not counted)')):
        ax.plot(x, value, 'o-', color='tab:blue')
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].set_yscale('log')
    fig.suptitle(f'StyleGAN3-T on Fashion-MNIST 32x32 (batch {CONFIG["batch"]}, cbase {CONFIG["cbase"]}, '
                 f'cmax {CONFIG["cmax"]}, gamma {CONFIG["gamma"]})')
    fig.tight_layout()
    fig.savefig(docs / 'convergence.png', dpi=110)
    plt.close(fig)
    # The final grid, or (a run still going) the newest snapshot's; both show the same fixed latents.
    grids = [run.fakes('_final')] if run.fakes('_final').is_file() else sorted(run.path.glob('fakes0*.png'))
    real = image_writing.image_grid(dataset.load_images(str(data), max_images=16)[0], grid=(4, 4))
    if grids:
        fakes = np.asarray(Image.open(grids[-1]))
        fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
        for ax, img, title in ((axes[0], fakes, f'generated (G_ema, {grids[-1].name}; {metric} {value[-1]:.1f} '
                                                f'at {kimg[-1]:.0f} kimg)'),
                               (axes[1], real, 'real (first 16 images)')):
            ax.imshow(img.squeeze(), cmap='gray', interpolation='nearest')
            ax.set_title(title, fontsize=9)
            ax.axis('off')
        fig.tight_layout()
        fig.savefig(docs / 'convergence-grid.png', dpi=110)
        plt.close(fig)
    print(f'wrote {docs / "convergence.png"} and {docs / "convergence-grid.png"}')
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=120, help='Training time in all (metric time not counted).')
    parser.add_argument('--metric', default='fid10k_full', help='Metric evaluated every --every kimg.')
    parser.add_argument('--every', type=int, default=10, help='kimg between checkpoints and metric evaluations.')
    parser.add_argument('--outdir', default=str(ROOT / 'runs' / 'convergence'))
    parser.add_argument('--data', default=str(ROOT / 'data' / 'fashion-mnist-32.zip'))
    parser.add_argument('--docs', default=str(ROOT / 'docs'), help='Where the two PNGs go.')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--plot-only', action='store_true')
    args = parser.parse_args()
    data = pathlib.Path(args.data)
    try:
        import matplotlib  # noqa: F401  (checked before hours of training)
    except ImportError:
        sys.exit('error: the plots need matplotlib: pip install -e ".[plots]"')
    from afgan_tf.training import RunDir
    if args.plot_only:
        run = RunDir(pathlib.Path(args.outdir) / 'run')
    else:
        make_dataset(data)
        run = train(args, data)
    rows = plot(run, args.metric, pathlib.Path(args.docs), data)
    if rows:
        print(f'\n| kimg | training minutes | {args.metric} |\n|---|---|---|')
        for r in rows:
            print(f'| {r["kimg"]:.1f} | {r.get("train_minutes", float("nan")):.1f} | {r["value"]:.2f} |')
        best = min(rows, key=lambda r: r['value'])
        print(f'best {args.metric} {best["value"]:.2f} at {best["kimg"]:.1f} kimg after '
              f'{best.get("train_minutes", float("nan")):.1f} training minutes')


if __name__ == '__main__':
    main()
