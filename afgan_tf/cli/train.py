"""afgan-train: train StyleGAN3-T / StyleGAN3-R / StyleGAN2 (any registered preset) with Keras fit().

    afgan-dataset --source fashion-mnist --dest data/fashion-mnist-32.zip --resolution 32
    afgan-train --outdir runs --cfg stylegan3-t --data data/fashion-mnist-32.zip --batch 8 --gamma 0.5 \\
                --cbase 4096 --cmax 128 --minutes 10
    afgan-train --resume runs/00000-stylegan3-t-fashion-mnist-32-replicas1-batch8-gamma0.5

Flag names follow NVIDIA's train.py (dashed; the older underscore spellings still work). A run
directory <outdir>/NNNNN-<cfg>-<data>-replicas<R>-batch<B>-gamma<G> holds training_options.json,
checkpoints/ (every --snap ticks and at the end), logs/ (TensorBoard), fakes*.png sample grids, and
network-final/ (the project's network format, accepted by every tool).

--resume RUN_DIR needs nothing else: it continues the run from its newest intact checkpoint
exactly as if it had never stopped (a damaged newest checkpoint is skipped, and says why).
--data may name the dataset's new place if it moved: it must have the same content. --kimg,
--minutes and --log-every may be changed on resume.
--aug ada (default) adapts the augmentation probability towards --target; --aug fixed uses --p.
--init NETWORK fine-tunes a released model (NVIDIA's train.py --resume=URL.pkl): a new run from its G, D
and G_ema, with its architecture and arguments, NVIDIA's overrides (no EMA ramp-up, no blur ramp,
ada_kimg 100), and --freezed N to freeze the first N discriminator blocks.
--metrics (e.g. fid50k_full,eqt50k_int; default none: they are slow on a CPU) are computed on G_ema
at every snapshot (or --metrics-at end), printed, logged to TensorBoard and appended to metric-*.jsonl.
--multiworker uses MultiWorkerMirroredStrategy (workers described by $TF_CONFIG).
The work itself is afgan_tf.training.train(options, run_dir).
"""

import os
import pathlib

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('outdir', None, 'Where to make the run directory (new runs).')
flags.DEFINE_string('cfg', None, 'Configuration: a preset name (afgan_tf.PRESETS: stylegan3-t (default), '
                    'stylegan3-r, stylegan2, ...).')
flags.DEFINE_string('data', None, 'Training data: a zip or folder written by afgan-dataset.')
flags.DEFINE_integer('replicas', 1, 'Replicas (GPUs, or logical CPU devices on a CPU-only machine).')
flags.DEFINE_integer('batch', 32, 'Total batch size.')
flags.DEFINE_integer('batch-gpu', None, 'Images per replica processed at a time, gradients accumulated over the rounds '
                     '(NVIDIA\'s --batch-gpu: less memory, the same step); default: the whole batch per replica.')
flags.DEFINE_float('gamma', None, 'R1 regularisation weight (new runs).')
flags.DEFINE_float('kimg', 25000, 'Total training duration (thousands of real images).')
flags.DEFINE_float('minutes', None, 'Also stop after this many minutes of training in this process (metric '
                   'evaluation not counted).')
flags.DEFINE_float('tick', 4, 'Progress/snapshot tick in kimg.')
flags.DEFINE_integer('snap', 50, 'Checkpoint and sample grid every this many ticks.')
flags.DEFINE_bool('mirror', False, 'Enable dataset x-flips.')
flags.DEFINE_bool('cond', False, 'Train a conditional model (dataset labels).')
flags.DEFINE_enum('aug', 'ada', ['noaug', 'ada', 'fixed'], 'Augmentation mode (ADA bgc pipeline).')
flags.DEFINE_float('target', 0.6, 'ADA target value of E[sign(D(real))].')
flags.DEFINE_float('p', 0.2, 'Augmentation probability for --aug fixed.')
flags.DEFINE_string('metrics', 'none', 'Metrics at every snapshot and at the end (comma-separated, or none).')
flags.DEFINE_enum('metrics-at', 'snapshot', ['snapshot', 'end'], 'Compute --metrics at every snapshot, or only '
                  'at the end of training.')
flags.DEFINE_integer('metric-num', None, 'Generated samples per metric (default: as the metric name says).')
flags.DEFINE_bool('multiworker', False, 'MultiWorkerMirroredStrategy across the workers of $TF_CONFIG.')
flags.DEFINE_integer('cbase', None, 'Capacity multiplier (channel_base; default 32768).')
flags.DEFINE_integer('cmax', None, 'Max. feature maps (channel_max; default 512).')
flags.DEFINE_integer('map', None, 'Mapping network depth (default: the preset\'s, 2 for StyleGAN3, 8 for StyleGAN2).')
flags.DEFINE_float('glr', None, 'G learning rate (default: the preset\'s, 0.0025 for StyleGAN3, 0.002 for StyleGAN2).')
flags.DEFINE_float('dlr', None, 'D learning rate (default: the preset\'s, 0.002).')
flags.DEFINE_integer('mbstd-group', 4, 'Minibatch-std group size.')
flags.DEFINE_string('resume', None, 'Run directory to continue (needs no other flag).')
flags.DEFINE_string('init', None, 'Fine-tune: start a new run from this network\'s G, D and G_ema (an NVIDIA .pkl path '
                    'or URL, a project network or run directory); its architecture and arguments are kept.')
flags.DEFINE_enum('precision', 'auto', ['auto', 'float32', 'float16', 'bfloat16'], 'Precision of the top '
                  '4 resolutions (num_fp16_res): auto = float16 with loss scaling on a GPU, float32 on a CPU.')
flags.DEFINE_bool('fp32', False, 'Everything in float32, without the conv clamp (NVIDIA\'s --fp32).')
flags.DEFINE_integer('freezed', 0, 'Freeze the first N discriminator blocks (FreezeD), usually with --init.')
flags.DEFINE_integer('seed', 0, 'Random seed.')
flags.DEFINE_integer('log-every', 10, 'Print a progress line every this many steps.')
for _name in ('metrics-at', 'metric-num', 'mbstd-group', 'log-every'):
    flags.DEFINE_alias(_name.replace('-', '_'), _name)


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


def _resume_options(run):
    """The stored options of --resume, with the flags a continuation may change."""
    from afgan_tf.training import dataset
    from afgan_tf.training.training_loop import check_options
    if not run.options_file.is_file():
        raise common.UsageError(f'--resume {run.path} is not a run directory (no training_options.json)')
    try:
        options = run.read_options()
        run.read_state()
        for name in ('kimg', 'minutes', 'log-every'):
            if FLAGS[name].present:
                options[{'kimg': 'total_kimg', 'log-every': 'log_every'}.get(name, name)] = FLAGS[name].value
        check_options(options, f'--resume {run.path}')
    except ValueError as e:
        raise common.UsageError(str(e)) from None
    given = FLAGS.data
    if given and pathlib.Path(given).resolve() != pathlib.Path(options['data']):
        try:
            found = dataset.fingerprint(given)
        except (OSError, ValueError) as e:
            raise common.UsageError(f'--data: {e}') from None
        stored = options.get('data_fingerprint')
        if stored is not None and found != stored:
            raise common.UsageError(f'--data {given} is not the dataset this run trained on ({options["data"]}): its '
                                    f'content differs (fingerprint {found[:12]} vs {stored[:12]})')
        print(f'the dataset moved: {options["data"]} -> {pathlib.Path(given).resolve()} (same content)', flush=True)
        options['data'] = str(pathlib.Path(given).resolve())
    elif not pathlib.Path(options['data']).exists():
        raise common.UsageError(f'the run\'s dataset {options["data"]} is gone; give its new place with --data')
    else:                                   # The same path: its content must still be the run's.
        try:
            found = dataset.fingerprint(options['data'])
        except (OSError, ValueError) as e:
            raise common.UsageError(f'the run\'s dataset {options["data"]}: {e}') from None
        stored = options.get('data_fingerprint')
        if stored is not None and found != stored:
            raise common.UsageError(f'the run\'s dataset {options["data"]} was replaced: its content differs from '
                                    f'what the run trained on (fingerprint {found[:12]} vs {stored[:12]}); restore it '
                                    'or start a new run')
    return options


def _given(name):
    """A flag's value when given on the command line, else None (the preset's or the --init network's)."""
    return FLAGS[name].value if FLAGS[name].present else None


def _new_options(strategy):
    from afgan_tf.training import dataset, training_options
    from afgan_tf.networks import PRESETS
    if FLAGS['cfg'].present and FLAGS.cfg not in PRESETS:
        raise common.UsageError(f'--cfg must be one of {sorted(PRESETS)}, got {FLAGS.cfg!r}')
    missing = [f'--{n}' for n in ('outdir', 'data', 'gamma') if FLAGS[n].value is None]
    if missing:
        raise common.UsageError(f'a new run needs {", ".join(missing)} (or --resume RUN_DIR to continue one)')
    if not os.path.exists(FLAGS.data):
        raise common.UsageError(f'--data: not found: {FLAGS.data}')
    try:
        return training_options(
            cfg=_given('cfg'), data=FLAGS.data, gamma=FLAGS.gamma, batch=FLAGS.batch,
            replicas=strategy.num_replicas_in_sync, seed=FLAGS.seed, kimg=FLAGS.kimg, tick=FLAGS.tick, snap=FLAGS.snap,
            mirror=FLAGS.mirror, cond=FLAGS.cond, aug=FLAGS.aug, target=FLAGS.target, p=FLAGS.p, metrics=FLAGS.metrics,
            metrics_at=FLAGS['metrics-at'].value, metric_num=FLAGS['metric-num'].value, cbase=_given('cbase'),
            cmax=_given('cmax'), map=FLAGS.map, glr=FLAGS.glr, dlr=FLAGS.dlr, mbstd_group=FLAGS['mbstd-group'].value,
            minutes=FLAGS.minutes, log_every=FLAGS['log-every'].value, init=FLAGS.init, freezed=FLAGS.freezed,
            precision=FLAGS.precision, fp32=FLAGS.fp32, batch_gpu=FLAGS['batch-gpu'].value)
    except dataset.DatasetError as e:
        raise common.UsageError(f'--data: {e}') from None
    except ValueError as e:
        raise common.UsageError(f'--{e}') from None


def main(argv):
    del argv
    import tempfile
    from afgan_tf.training import RunDir, TrainingError, train
    from afgan_tf.training.training_loop import _is_chief
    if FLAGS.batch % FLAGS.replicas:
        raise common.UsageError(f'--batch ({FLAGS.batch}) must be divisible by --replicas ({FLAGS.replicas})')
    strategy = _setup_devices(FLAGS.replicas)
    if FLAGS.resume:
        run = RunDir(FLAGS.resume)
        options = _resume_options(run)
    else:
        options = _new_options(strategy)
        # Other workers write their (identical) files to a scratch directory.
        outdir = FLAGS.outdir if _is_chief(strategy) else tempfile.mkdtemp(prefix='afgan_worker_')
        run = RunDir.next_in(outdir, options)
    try:
        train(options, run, strategy=strategy, log=lambda m: print(m, flush=True))
    except TrainingError as e:
        common.fail(str(e), code=1)


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
