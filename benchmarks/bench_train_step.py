"""One training step of this project and of NVIDIA's code, on the CPU, with the same configuration.

    python benchmarks/bench_train_step.py --cfg stylegan3-t --resolution 32 --channels 1 --batch 8 \\
        --cbase 2048 --cmax 64 [--nvlabs /path/to/NVlabs/stylegan3] [--precision float32,bfloat16]

A step is what both training loops do per batch: G main, D main, the lazy R1 step amortised
(timed over a multiple of its interval, 16 steps; ours from the end of a first step of a fit call to the end of
the last, which leaves out the fixed cost of the call), StyleGAN2's lazy path length likewise, and the
G EMA update. This project: ``afgan_tf.training`` (fit's traced step functions, the fused op when
built) for each --precision. NVIDIA's (when --nvlabs points at a checkout of NVlabs/stylegan3 and
PyTorch imports): its Generator / Discriminator / StyleGAN2Loss with the phases, lazy intervals
and Adam settings of its training_loop.py, no augmentation. Prints sec/kimg (the best of --rounds rounds
that alternate between the implementations) and the ratio, from
the same run. With --profile DIR, also writes a TensorFlow profiler trace of our steps and prints
the time per op type. Asserts nothing.
"""

import argparse
import os
import pathlib
import sys
import time

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from synthetic import write_dataset  # noqa: E402


def ours(args, precision, data):
    """A timer of this project's training step: each call times one round, in sec/kimg."""
    import keras
    import tensorflow as tf

    from afgan_tf import training
    from afgan_tf.training import dataset
    from afgan_tf.training.training_loop import build_gan
    options = training.training_options(cfg=args.cfg, data=data, gamma=args.gamma, batch=args.batch, cbase=args.cbase,
                                        cmax=args.cmax, aug='noaug', precision=precision)
    gan = build_gan(options)
    ds = dataset.make_dataset(data, args.batch, seed=0)
    steps = args.steps

    class StepEnds(keras.callbacks.Callback):
        """The time at the end of each step (a callback makes fit wait for each step's results)."""

        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    def fit(n):
        ends = StepEnds()
        gan.fit(ds, epochs=1, steps_per_epoch=n, verbose=0, shuffle=False, callbacks=[ends])
        return ends.times

    fit(steps)                               # Traces every step variant.
    if args.profile and precision == args.precision.split(',')[0]:     # Profiled separately: it slows the steps.
        tf.profiler.experimental.start(args.profile)
        fit(steps)
        tf.profiler.experimental.stop()

    def timer():
        # From the end of a first step to the end of `steps` more: leaves out the fixed cost of a fit call
        # (its iterator and callbacks; afgan-train makes one fit call for the whole run).
        ends = fit(steps + 1)
        return (ends[-1] - ends[0]) / (steps * args.batch) * 1000
    return timer


def nvidia(args, data):
    """A timer of NVIDIA's training step (their modules, phases and optimizer settings), on the CPU: each call
    times one round, in sec/kimg."""
    import torch
    sys.path.insert(0, args.nvlabs)
    try:        # NVIDIA's conv2d_gradfix imports pkg_resources, gone from recent setuptools: its one use.
        import pkg_resources  # noqa: F401
    except ImportError:
        import types
        from packaging.version import parse
        sys.modules['pkg_resources'] = types.SimpleNamespace(parse_version=parse)
    import dnnlib
    from training import loss as nv_loss
    from training import networks_stylegan2, networks_stylegan3  # noqa: F401 (dnnlib.util.construct_class_by_name)
    from afgan_tf.training import dataset
    torch.manual_seed(0)
    reader = dataset.DatasetReader.open(data)
    res, ch = reader.resolution, reader.channels
    sg2 = args.cfg == 'stylegan2'
    mult = 2 if args.cfg == 'stylegan3-r' else 1
    G_kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan2.Generator' if sg2 else
                               'training.networks_stylegan3.Generator', z_dim=512, w_dim=512,
                               mapping_kwargs=dnnlib.EasyDict(num_layers=8 if sg2 else 2),
                               channel_base=args.cbase * mult, channel_max=args.cmax * mult, num_fp16_res=0,
                               conv_clamp=None)
    if args.cfg == 'stylegan3-r':
        G_kwargs.update(conv_kernel=1, use_radial_filters=True)
    if not sg2:
        G_kwargs.magnitude_ema_beta = 0.5 ** (args.batch / 20000)
    D_kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan2.Discriminator', channel_base=args.cbase,
                               channel_max=args.cmax, num_fp16_res=0, conv_clamp=None,
                               epilogue_kwargs=dnnlib.EasyDict(mbstd_group_size=4))
    G = dnnlib.util.construct_class_by_name(**G_kwargs, c_dim=0, img_resolution=res, img_channels=ch).train()
    D = dnnlib.util.construct_class_by_name(**D_kwargs, c_dim=0, img_resolution=res, img_channels=ch).train()
    G_ema = __import__('copy').deepcopy(G).eval()
    loss = nv_loss.StyleGAN2Loss(device=torch.device('cpu'), G=G, D=D, r1_gamma=args.gamma,
                                 style_mixing_prob=0.9 if sg2 else 0, pl_weight=2 if sg2 else 0,
                                 blur_init_sigma=10 if args.cfg == 'stylegan3-r' else 0,
                                 blur_fade_kimg=args.batch * 200 / 32 if args.cfg == 'stylegan3-r' else 0)
    phases = []
    for name, module, lr, interval in (('G', G, 0.002 if sg2 else 0.0025, 4 if sg2 else None), ('D', D, 0.002, 16)):
        if interval is None:
            opt = torch.optim.Adam(module.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
            phases.append((name + 'both', module, opt, 1))
        else:
            ratio = interval / (interval + 1)
            opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
            phases += [(name + 'main', module, opt, 1), (name + 'reg', module, opt, interval)]
    images = next(iter(dataset.make_dataset(data, args.batch, seed=0))).numpy()
    real = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    c = torch.zeros([args.batch, 0])
    ema_beta = 0.5 ** (args.batch / (args.batch * 10 / 32 * 1000))

    def step(index):
        for name, module, opt, interval in phases:
            if index % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            z = torch.randn([args.batch, G.z_dim])
            loss.accumulate_gradients(phase=name, real_img=real, real_c=c, gen_z=z, gen_c=c, gain=interval,
                                      cur_nimg=index * args.batch)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)

    for i in range(2):                       # Warm-up (includes an R1 step).
        step(i * 16)

    def timer():
        start = time.perf_counter()
        for i in range(args.steps):
            step(i)
        return (time.perf_counter() - start) / (args.steps * args.batch) * 1000
    return timer


def profile_table(logdir, top=12):
    """Time per TensorFlow op type in the profiler's host trace (XSpace), as a list of
    (op type, ms, share of all op time). Op events are named 'scope/name:Type'."""
    import collections
    import glob
    try:
        from tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    files = sorted(glob.glob(f'{logdir}/plugins/profile/*/*.xplane.pb'))
    if not files:
        return []
    space = xplane_pb2.XSpace()
    space.ParseFromString(pathlib.Path(files[-1]).read_bytes())
    per_type = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, '')
                if ':' in name and '/' in name.split(':')[0]:
                    per_type[name.rsplit(':', 1)[1]] += event.duration_ps / 1e9
    total = sum(per_type.values()) or 1
    return [(k, v, v / total) for k, v in per_type.most_common(top)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', default='stylegan3-t')
    parser.add_argument('--resolution', type=int, default=32)
    parser.add_argument('--channels', type=int, default=1)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--cbase', type=int, default=2048)
    parser.add_argument('--cmax', type=int, default=64)
    parser.add_argument('--gamma', type=float, default=0.5)
    parser.add_argument('--steps', type=int, default=16, help='Timed steps (a multiple of the R1 interval, 16).')
    parser.add_argument('--rounds', type=int, default=3, help='Alternating timed rounds; each keeps its best.')
    parser.add_argument('--precision', default='float32', help='Comma-separated: float32, bfloat16, float16.')
    parser.add_argument('--nvlabs', default=None, help='A checkout of NVlabs/stylegan3 (needs PyTorch).')
    parser.add_argument('--profile', default=None, help='Write a TensorFlow profiler trace of our steps here.')
    parser.add_argument('--workdir', default='/tmp/bench_train_step')
    args = parser.parse_args()
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = write_dataset(work / f'data-{args.resolution}-{args.channels}.zip', 256, args.resolution, args.channels)
    config = (f'{args.cfg} {args.resolution}x{args.resolution}x{args.channels}, batch {args.batch}, '
              f'cbase {args.cbase}, cmax {args.cmax}, CPU')
    timers = {f'afgan_tf ({precision})': ours(args, precision, data) for precision in args.precision.split(',')}
    if args.nvlabs:
        timers['NVIDIA (PyTorch)'] = nvidia(args, data)
    # Rounds alternate between the implementations, so that a machine whose speed drifts (shared hosts) slows
    # all of them alike; each keeps its best round.
    rounds = {name: [] for name in timers}
    for r in range(args.rounds):
        for name, timer in timers.items():
            rounds[name].append(timer())
        print(f'round {r + 1}: ' + ', '.join(f'{name} {v[-1]:.1f}' for name, v in rounds.items()) + ' sec/kimg',
              flush=True)
    results = {name: min(v) for name, v in rounds.items()}
    first = next(iter(results.values()))
    print(f'\n| implementation | sec/kimg | relative to afgan_tf ({args.precision.split(",")[0]}) |  ({config})')
    print('|---|---|---|')
    for name, value in results.items():
        print(f'| {name} | {value:.1f} | {value / first:.2f}x |')
    if args.profile:
        print('\n| op type | ms | share |  (profiler, our timed steps)')
        print('|---|---|---|')
        for op_type, ms, share in profile_table(args.profile):
            print(f'| {op_type} | {ms:.0f} | {share:.1%} |')


if __name__ == '__main__':
    main()
