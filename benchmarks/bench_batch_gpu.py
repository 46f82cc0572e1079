"""Peak memory of one training step with and without --batch-gpu, on the CPU (resident set size).

    python benchmarks/bench_batch_gpu.py --cfg stylegan3-t --resolution 256 --batch 4 --batch-gpu 1,2

Each configuration runs in its own process (peak RSS is per process): it builds the GAN of
``afgan-train``'s options (NVIDIA's full-size preset unless --cbase / --cmax say otherwise, no
augmentation, float32), then runs one step of ``fit``, the step at which every phase runs (G main, D
main and the lazy R1 pass with its second-order gradient, and for StyleGAN2 the path-length pass).
Then it runs the same step twice more (fit's dispatcher set back to step 0), the last time with the
peak reset (Linux's /proc/self/clear_refs), so that tracing is not counted. Prints, per
configuration, the RSS once the networks are built, the peak of the first two steps (tracing
included), the peak of the last, its increase over the RSS just before it (what the step itself
needs) and the last step's time. The peak
of the step is what --batch-gpu bounds: activations and their gradients for batch_gpu images at a
time instead of the whole batch per replica. Asserts nothing.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from synthetic import write_dataset  # noqa: E402


def rss_mib(field='VmRSS'):
    """The current (VmRSS) or peak (VmHWM) resident set size, from Linux's /proc."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ':')) / 1024


def child(args):
    """One configuration: prints a JSON line with the RSS figures."""
    from afgan_tf import training
    from afgan_tf.training import dataset
    from afgan_tf.training.training_loop import build_gan
    options = training.training_options(cfg=args.cfg, data=args.data, gamma=args.gamma, batch=args.batch,
                                        cbase=args.cbase, cmax=args.cmax, aug='noaug', precision='float32',
                                        batch_gpu=args.child_batch_gpu or None)
    gan = build_gan(options)
    ds = dataset.make_dataset(args.data, args.batch, seed=0)
    built = rss_mib()
    for _ in range(2):      # Traces the step, then runs it once more warm (a new fit's first call is slower).
        gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        gan.dispatch_counter[0] = 0                                            # The same step (every phase) again.
    first = rss_mib('VmHWM')
    before = rss_mib()
    with open('/proc/self/clear_refs', 'w') as f:                              # Resets VmHWM to the current RSS.
        f.write('5')
    start = time.perf_counter()
    gan.fit(ds, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    print(json.dumps({'built_mib': built, 'first_peak_mib': first, 'before_mib': before,
                      'peak_mib': rss_mib('VmHWM'), 'seconds': seconds}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', default='stylegan3-t')
    parser.add_argument('--resolution', type=int, default=256)
    parser.add_argument('--channels', type=int, default=3)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--batch-gpu', default='1,2', help='Comma-separated round sizes to compare with none.')
    parser.add_argument('--cbase', type=int, default=None, help='Default: the preset (NVIDIA\'s full size).')
    parser.add_argument('--cmax', type=int, default=None)
    parser.add_argument('--gamma', type=float, default=2.0)
    parser.add_argument('--workdir', default='/tmp/bench_batch_gpu')
    parser.add_argument('--child-batch-gpu', type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument('--data', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data is not None:
        return child(args)
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = write_dataset(work / f'data-{args.resolution}-{args.channels}.zip', 32, args.resolution, args.channels)
    sizes = [0] + [int(s) for s in args.batch_gpu.split(',') if s]
    print(f'{args.cfg} {args.resolution}x{args.resolution}x{args.channels}, batch {args.batch}, cbase '
          f'{args.cbase or "preset"}, cmax {args.cmax or "preset"}, float32, one step with every phase', flush=True)
    print(f'{"--batch-gpu":>12} {"built MiB":>10} {"1st peak":>10} {"peak MiB":>10} {"step MiB":>10} {"step s":>8}',
          flush=True)
    for size in sizes:
        command = [sys.executable, __file__, '--data', str(data), '--cfg', args.cfg, '--batch', str(args.batch),
                   '--gamma', str(args.gamma), '--child-batch-gpu', str(size)]
        command += ['--cbase', str(args.cbase)] if args.cbase else []
        command += ['--cmax', str(args.cmax)] if args.cmax else []
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith('{')]
        if done.returncode or not lines:
            print(f'{size or "none":>12} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}', flush=True)
            continue
        r = json.loads(lines[-1])
        print(f'{size or "none":>12} {r["built_mib"]:>10.0f} {r["first_peak_mib"]:>10.0f} {r["peak_mib"]:>10.0f} '
              f'{r["peak_mib"] - r["before_mib"]:>10.0f} {r["seconds"]:>8.1f}', flush=True)


if __name__ == '__main__':
    main()
