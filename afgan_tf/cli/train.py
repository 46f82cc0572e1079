"""afgan-train: train StyleGAN3-T / StyleGAN3-R / StyleGAN2 with Keras fit().

    afgan-dataset --source fashion-mnist --dest data/fashion-mnist-32.zip --resolution 32
    afgan-train --outdir runs --cfg stylegan3-t --data data/fashion-mnist-32.zip --batch 8 --gamma 0.5 \\
                --cbase 4096 --cmax 128 --minutes 10

Flag names follow NVIDIA's train.py. A run directory <outdir>/NNNNN-<cfg>-<data>-replicas<R>-batch<B>-gamma<G>
holds training_options.json, checkpoints/ (tf.train, every --snap ticks and at the end), logs/
(TensorBoard), fakes*.png sample grids, and network-final/ (the project's network format,
accepted by every tool). --resume RUN_DIR continues a run from its latest checkpoint exactly as if
it had never stopped (same options, data order, random streams and schedules).
--aug ada (default) adapts the augmentation probability towards --target; --aug fixed uses --p.
--metrics (e.g. fid50k_full,eqt50k_int; default none: they are slow on a CPU) are computed on G_ema
at every snapshot and at the end, printed, logged to TensorBoard and appended to metric-*.jsonl.
--multiworker uses MultiWorkerMirroredStrategy (workers described by $TF_CONFIG).
"""

import json
import os
import pathlib
import re

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags
import numpy as np

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('outdir', None, 'Where to make the run directory.')
flags.DEFINE_enum('cfg', 'stylegan3-t', ['stylegan3-t', 'stylegan3-r', 'stylegan2'], 'Configuration.')
flags.DEFINE_string('data', None, 'Training data: a zip or folder written by afgan-dataset.')
flags.DEFINE_integer('replicas', 1, 'Replicas (GPUs, or logical CPU devices on a CPU-only machine).')
flags.DEFINE_integer('batch', 32, 'Total batch size.')
flags.DEFINE_float('gamma', None, 'R1 regularisation weight.')
flags.DEFINE_float('kimg', 25000, 'Total training duration (thousands of real images).')
flags.DEFINE_float('minutes', None, 'Also stop after this many minutes.')
flags.DEFINE_float('tick', 4, 'Progress/snapshot tick in kimg.')
flags.DEFINE_integer('snap', 50, 'Checkpoint and sample grid every this many ticks.')
flags.DEFINE_bool('mirror', False, 'Enable dataset x-flips.')
flags.DEFINE_bool('cond', False, 'Train a conditional model (dataset labels).')
flags.DEFINE_enum('aug', 'ada', ['noaug', 'ada', 'fixed'], 'Augmentation mode (ADA bgc pipeline).')
flags.DEFINE_float('target', 0.6, 'ADA target value of E[sign(D(real))].')
flags.DEFINE_float('p', 0.2, 'Augmentation probability for --aug fixed.')
flags.DEFINE_string('metrics', 'none', 'Metrics at every snapshot and at the end (comma-separated, or none).')
flags.DEFINE_enum('metrics_at', 'snapshot', ['snapshot', 'end'], 'Compute --metrics at every snapshot, or only '
                  'at the end of training.')
flags.DEFINE_integer('metric_num', None, 'Generated samples per metric (default: as the metric name says).')
flags.DEFINE_bool('multiworker', False, 'MultiWorkerMirroredStrategy across the workers of $TF_CONFIG.')
flags.DEFINE_integer('cbase', 32768, 'Capacity multiplier (channel_base).')
flags.DEFINE_integer('cmax', 512, 'Max. feature maps (channel_max).')
flags.DEFINE_integer('map', None, 'Mapping network depth (default: 2 for StyleGAN3, 8 for StyleGAN2).')
flags.DEFINE_float('glr', None, 'G learning rate (default: 0.0025 for StyleGAN3, 0.002 for StyleGAN2).')
flags.DEFINE_float('dlr', 0.002, 'D learning rate.')
flags.DEFINE_integer('mbstd_group', 4, 'Minibatch-std group size.')
flags.DEFINE_string('resume', None, 'Run directory to continue.')
flags.DEFINE_integer('seed', 0, 'Random seed.')
flags.DEFINE_integer('log_every', 10, 'Print a progress line every this many steps.')
flags.mark_flags_as_required(['outdir', 'data', 'gamma'])


def _setup_devices(replicas):
    import tensorflow as tf
    if FLAGS.multiworker:
        if 'TF_CONFIG' not in os.environ:
            raise common.UsageError('--multiworker needs $TF_CONFIG (cluster and task of this worker)')
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices('GPU')
    if replicas == 1:
        return tf.distribute.get_strategy()
    if gpus:
        if len(gpus) < replicas:
            raise common.UsageError(f'--replicas {replicas} but only {len(gpus)} GPUs')
        return tf.distribute.MirroredStrategy([f'/gpu:{i}' for i in range(replicas)])
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    return tf.distribute.MirroredStrategy([f'/cpu:{i}' for i in range(replicas)],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def _is_chief(strategy):
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not FLAGS.multiworker:
        return True
    return resolver.task_type == 'chief' or (resolver.task_type == 'worker' and resolver.task_id == 0 and
                                             'chief' not in resolver.cluster_spec().as_dict())


def options_from_flags(resolution, channels, c_dim):
    """training_options.json: every hyperparameter of the run (the reference's train.py defaults)."""
    from afgan_tf.training.augment import BGC
    cfg, batch = FLAGS.cfg, FLAGS.batch
    sg2 = cfg == 'stylegan2'
    G_kwargs = dict(architecture=cfg, z_dim=512, w_dim=512, img_resolution=resolution, img_channels=channels,
                    c_dim=c_dim, channel_base=FLAGS.cbase, channel_max=FLAGS.cmax,
                    mapping_kwargs=dict(num_layers=FLAGS.map or (8 if sg2 else 2)))
    if not sg2:
        G_kwargs['magnitude_ema_beta'] = 0.5 ** (batch / 20000)
    if cfg == 'stylegan3-r':
        G_kwargs.update(conv_kernel=1, use_radial_filters=True, channel_base=FLAGS.cbase * 2,
                        channel_max=FLAGS.cmax * 2)
    D_kwargs = dict(img_resolution=resolution, img_channels=channels, c_dim=c_dim, channel_base=FLAGS.cbase,
                    channel_max=FLAGS.cmax, epilogue_kwargs=dict(mbstd_group_size=FLAGS.mbstd_group))
    aug = dict(augment_p=FLAGS.p if FLAGS.aug == 'fixed' else 0.0,
               ada_target=FLAGS.target if FLAGS.aug == 'ada' else None, ada_interval=4, ada_kimg=500)
    return dict(cfg=cfg, data=FLAGS.data, batch_size=batch, replicas=FLAGS.replicas, seed=FLAGS.seed,
                G_kwargs=G_kwargs, D_kwargs=D_kwargs,
                G_lr=FLAGS.glr or (0.002 if sg2 else 0.0025), D_lr=FLAGS.dlr,
                G_reg_interval=4 if sg2 else None, D_reg_interval=16,
                augment_kwargs=dict(BGC) if FLAGS.aug != 'noaug' else None, metrics=FLAGS.metrics,
                loss_kwargs=dict(r1_gamma=FLAGS.gamma, r1_interval=16, style_mixing_prob=0.9 if sg2 else 0.0,
                                 pl_weight=2.0 if sg2 else 0.0, pl_interval=4, **aug,
                                 blur_init_sigma=10.0 if cfg == 'stylegan3-r' else 0.0,
                                 blur_fade_kimg=batch * 200 / 32 if cfg == 'stylegan3-r' else 0.0,
                                 ema_kimg=batch * 10 / 32, ema_rampup=0.05),
                total_kimg=FLAGS.kimg, tick_kimg=FLAGS.tick, snap=FLAGS.snap, mirror=FLAGS.mirror,
                cond=FLAGS.cond, aug=FLAGS.aug)


def _run_dir(outdir, options):
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ids = [int(m.group(1)) for m in (re.match(r'^(\d{5})-', p.name) for p in outdir.iterdir()) if m]
    data_name = pathlib.Path(options['data'].rstrip('/')).stem
    name = (f'{max(ids, default=-1) + 1:05d}-{options["cfg"]}-{data_name}-replicas{options["replicas"]}'
            f'-batch{options["batch_size"]}-gamma{options["loss_kwargs"]["r1_gamma"]:g}')
    run_dir = outdir / name
    run_dir.mkdir()
    return run_dir


def main(argv):
    del argv
    from afgan_tf.metrics import metric_main
    try:
        metric_specs = metric_main.parse_metric_list(FLAGS.metrics)
    except ValueError as e:
        raise common.UsageError(f'--{e}') from None
    if FLAGS.cfg == 'stylegan2' and any(s.kind.startswith('eq') for s in metric_specs):
        raise common.UsageError('--metrics: the equivariance metrics need a StyleGAN3 config (--cfg stylegan3-t/-r)')
    if not 0 <= FLAGS.p <= 1 or not 0 < FLAGS.target < 1:
        raise common.UsageError(f'--p must be in [0, 1] and --target in (0, 1), got {FLAGS.p}, {FLAGS.target}')
    if FLAGS.batch % FLAGS.replicas:
        raise common.UsageError(f'--batch ({FLAGS.batch}) must be divisible by --replicas ({FLAGS.replicas})')
    strategy = _setup_devices(FLAGS.replicas)
    import tensorflow as tf
    import afgan_tf
    from afgan_tf import network_io
    from afgan_tf.training import callbacks, dataset
    from afgan_tf.training.augment import AugmentPipe
    from afgan_tf.training.gan import GAN, lazy_adam

    if FLAGS.resume:
        run_dir = pathlib.Path(FLAGS.resume)
        if not (run_dir / 'training_options.json').is_file():
            raise common.UsageError(f'--resume {run_dir} is not a run directory (no training_options.json)')
        options = json.loads((run_dir / 'training_options.json').read_text())
        options['total_kimg'] = FLAGS.kimg if FLAGS['kimg'].present else options['total_kimg']
    else:
        options = None
    data_path = options['data'] if options else FLAGS.data
    try:
        real, labels = dataset.load_images(data_path)
    except (FileNotFoundError, ValueError) as e:
        raise common.UsageError(f'--data: {e}') from None
    n, res, _, channels = real.shape
    if res & (res - 1) or real.shape[1] != real.shape[2]:
        raise common.UsageError(f'--data images must be square with a power-of-two size, got {real.shape[1:3]}')
    c_dim = (int(labels.max()) + 1) if (FLAGS.cond and labels is not None) else 0
    if FLAGS.cond and labels is None:
        raise common.UsageError('--cond needs a dataset with labels')
    if options is None:
        options = options_from_flags(res, channels, c_dim)
        options['replicas'] = strategy.num_replicas_in_sync
        outdir = FLAGS.outdir
        if not _is_chief(strategy):     # Other workers write their (identical) files to a scratch directory.
            import tempfile
            outdir = tempfile.mkdtemp(prefix='afgan_worker_')
        run_dir = _run_dir(outdir, options)
        (run_dir / 'training_options.json').write_text(json.dumps(options, indent=2))
    tf.keras.utils.set_random_seed(options['seed'])
    batch = options['batch_size']
    print(f'run dir {run_dir}: {n} images {res}x{res}x{channels}, {options["cfg"]}, batch {batch}, '
          f'{strategy.num_replicas_in_sync} replica(s)', flush=True)

    with strategy.scope():
        G = afgan_tf.Generator(seed=options['seed'], **options['G_kwargs'])
        G_ema = afgan_tf.Generator.from_config(G.get_config())
        for src, dst in zip(G.weights, G_ema.weights):
            dst.assign(src)
        D = afgan_tf.Discriminator(seed=options['seed'] + 1, **options['D_kwargs'])
        # --resume continues the run exactly: the same options, no fine-tuning overrides.
        loss_kwargs = dict(options['loss_kwargs'])
        pipe = AugmentPipe(**options['augment_kwargs']) if options.get('augment_kwargs') else None
        gan = GAN(G, D, G_ema, batch_size=batch, augment_pipe=pipe, seed=options['seed'],
                  label_pool=labels if c_dim else None, **loss_kwargs)
        gan.compile(g_optimizer=lazy_adam(options['G_lr'], options.get('G_reg_interval')),
                    d_optimizer=lazy_adam(options['D_lr'], options.get('D_reg_interval', 16)))
    checkpoint = tf.train.Checkpoint(G=G, D=D, G_ema=G_ema, g_optimizer=gan.g_optimizer,
                                     d_optimizer=gan.d_optimizer, nimg=gan.nimg, step=gan.step,
                                     augment_p=gan.augment_p, ada_signs=gan.ada_signs, ada_count=gan.ada_count,
                                     pl_mean=gan.pl_mean, rng=gan.rng)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / 'checkpoints', max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f'resumed from {manager.latest_checkpoint} at step {int(gan.step.numpy())}, '
              f'kimg {float(gan.nimg.numpy()) / 1000:.3f}', flush=True)

    # The data order is a function of (seed, epoch): a resumed run starts at its step's position.
    start = int(gan.step.numpy()) * batch
    ds = strategy.distribute_datasets_from_function(lambda ctx: dataset.make_dataset(
        real, batch, labels=labels, c_dim=c_dim, xflip=options['mirror'], seed=options['seed'], input_context=ctx,
        start=start))
    steps_per_tick = max(1, int(round(options['tick_kimg'] * 1000 / batch)))
    total_kimg = options['total_kimg']
    remaining = max(0.0, total_kimg - float(gan.nimg.numpy()) / 1000)
    epochs = int(np.ceil(remaining * 1000 / batch / (steps_per_tick * options['snap'])))
    grid_z = np.random.RandomState(options['seed']).randn(16, G.z_dim).astype(np.float32)
    grid_c = np.eye(c_dim, dtype=np.float32)[np.arange(16) % c_dim] if c_dim else None
    saver = callbacks.Checkpointer(manager, gan, run_dir)
    grids = callbacks.SampleGrid(gan, run_dir, grid_z, grid_c, grid=(4, 4), log_dir=run_dir / 'logs')
    cbs = [callbacks.Progress(gan, total_kimg, FLAGS.log_every, run_dir / 'logs', FLAGS.minutes), grids, saver,
           callbacks.TimeLimit(gan, FLAGS.minutes, total_kimg)]
    metrics_cb = None
    if metric_specs:
        metrics_cb = callbacks.Metrics(gan, metric_specs, data_path, run_dir, run_dir / 'logs',
                                       num_gen=FLAGS.metric_num)
        if FLAGS.metrics_at == 'snapshot':
            cbs.insert(3, metrics_cb)   # After the checkpoint, so a snapshot's metrics name its checkpoint.
    if epochs > 0:
        gan.fit(ds, epochs=epochs, steps_per_epoch=steps_per_tick * options['snap'], callbacks=cbs, verbose=0,
                shuffle=False)
    saver.save()
    grids.write('_final')
    if metrics_cb is not None and metrics_cb.last_step != int(gan.step.numpy()):
        metrics_cb.compute()
    network_io.save_network(run_dir / 'network-final', {'G': G, 'D': D, 'G_ema': G_ema},
                            extras={'architecture': options['cfg'], 'kimg': float(gan.nimg.numpy()) / 1000},
                            overwrite=True)
    print(f'done: step {int(gan.step.numpy())}, kimg {float(gan.nimg.numpy()) / 1000:.3f}; '
          f'samples {run_dir / "fakes_final.png"}, network {run_dir / "network-final"}', flush=True)


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
