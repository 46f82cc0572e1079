"""Training as a library (NVIDIA's ``training_loop.py``): ``train(options, run_dir)``.

    from afgan_tf import training
    options = training.training_options(cfg='stylegan3-t', data='data/fashion-mnist-32.zip', gamma=0.5, batch=8,
                                        cbase=2048, cmax=64, kimg=10)
    training.train(options, 'runs/my-run')

``options`` is what ``training_options.json`` holds: every hyperparameter of the run, the
architecture's training defaults taken from its ``Preset`` record. ``RunDir`` owns the layout of a
run directory (every path and the checkpoint's keys). A run directory with checkpoints is
continued from its newest intact checkpoint, exactly as if the run had never stopped; the
``afgan-train`` CLI is flags -> options -> ``train``.
"""

import json
import pathlib
import re
import shutil

import numpy as np

OPTIONS_NAME = 'training_options.json'


class TrainingError(RuntimeError):
    """Training cannot go on (an unusable run directory, a dataset that changed, ...); the message
    says why and what is intact."""


class RunDir:
    """The layout of an afgan-train run directory: every path and the checkpoint's keys live here."""

    CHECKPOINT_KEYS = ('G', 'D', 'G_ema', 'g_optimizer', 'd_optimizer', 'nimg', 'step', 'augment_p', 'ada_signs',
                       'ada_count', 'pl_mean', 'rng')
    MAX_TO_KEEP = 3

    def __init__(self, path):
        self.path = pathlib.Path(path)

    @classmethod
    def next_in(cls, outdir, options):
        """The next numbered run directory in ``outdir`` (not created yet)."""
        outdir = pathlib.Path(outdir)
        ids = [int(m.group(1)) for m in (re.match(r'^(\d{5})-', p.name) for p in
                                         (outdir.iterdir() if outdir.is_dir() else [])) if m]
        data_name = pathlib.Path(str(options['data']).rstrip('/')).stem
        name = (f'{max(ids, default=-1) + 1:05d}-{options["cfg"]}-{data_name}-replicas{options["replicas"]}'
                f'-batch{options["batch_size"]}-gamma{options["loss_kwargs"]["r1_gamma"]:g}')
        return cls(outdir / name)

    @staticmethod
    def is_run_dir(path):
        path = pathlib.Path(path)
        return (path / OPTIONS_NAME).is_file() and (path / 'checkpoints').is_dir()

    # Paths.
    @property
    def options_file(self):
        return self.path / OPTIONS_NAME

    @property
    def state_file(self):
        return self.path / 'state.json'

    @property
    def checkpoint_dir(self):
        return self.path / 'checkpoints'

    @property
    def log_dir(self):
        return self.path / 'logs'

    @property
    def final_network(self):
        return self.path / 'network-final'

    def fakes(self, tag):
        return self.path / f'fakes{tag}.png'

    def metric_log(self, metric):
        return self.path / f'metric-{metric}.jsonl'

    # Files.
    def read_options(self):
        """The run's options, checked (``check_options``); ValueError names what is malformed."""
        try:
            options = json.loads(self.options_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ValueError(f'{self.options_file} cannot be read: {type(e).__name__}: {str(e)[:200]}') from None
        return check_options(options, self.options_file)

    def write_options(self, options):
        self._write_atomic(self.options_file, json.dumps(options, indent=2))

    def read_state(self):
        """state.json ({} before the first checkpoint); ValueError if malformed."""
        if not self.state_file.is_file():
            return {}
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ValueError(f'{self.state_file} cannot be read: {type(e).__name__}: {str(e)[:200]}') from None
        seconds = state.get('train_seconds', 0.0) if isinstance(state, dict) else None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < float('inf'):
            raise ValueError(f'{self.state_file} must be an object with a finite train_seconds >= 0, got '
                             f'{str(state)[:100]}')
        return state

    def write_state(self, state):
        self._write_atomic(self.state_file, json.dumps(state))

    @staticmethod
    def _write_atomic(path, text):
        tmp = path.with_name(f'.{path.name}.tmp')
        tmp.write_text(text)
        tmp.replace(path)

    # Checkpoints.
    @classmethod
    def checkpoint(cls, G, D, G_ema, gan=None):
        """The run's tf.train.Checkpoint: models, and with ``gan`` everything a continuation needs."""
        import tensorflow as tf
        objects = dict(G=G, D=D, G_ema=G_ema)
        if gan is not None:
            objects.update(g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer, nimg=gan.nimg, step=gan.step,
                           augment_p=gan.augment_p, ada_signs=gan.ada_signs, ada_count=gan.ada_count,
                           pl_mean=gan.pl_mean, rng=gan.rng)
            assert tuple(objects) == cls.CHECKPOINT_KEYS
        return tf.train.Checkpoint(**objects)

    def manager(self, checkpoint):
        import tensorflow as tf
        return tf.train.CheckpointManager(checkpoint, str(self.checkpoint_dir), max_to_keep=self.MAX_TO_KEEP)

    def checkpoints(self):
        """Checkpoint prefixes, newest first (from the files, so a damaged index does not hide any)."""
        found = {}
        for index in self.checkpoint_dir.glob('ckpt-*.index'):
            m = re.fullmatch(r'ckpt-(\d+)\.index', index.name)
            if m:
                found[int(m.group(1))] = str(index.with_suffix(''))
        return [found[k] for k in sorted(found, reverse=True)]

    def remove_stale_temporaries(self, log=print):
        """Deletes the *_temp* folders a kill during a checkpoint save leaves behind."""
        for tmp in sorted(self.checkpoint_dir.glob('*_temp*')):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            log(f'removed {tmp.name}, left by an interrupted checkpoint save')

    def restore_newest(self, checkpoint, partial=False, log=print):
        """Restores the newest checkpoint that reads back intact; returns its path, or None if there is none.

        A damaged one (truncated, unreadable) is skipped with a message that says why.
        """
        import tensorflow as tf
        for path in self.checkpoints():
            try:
                status = checkpoint.restore(path)
                (status.expect_partial() if partial else status).assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, ValueError, IndexError, OSError, AssertionError) as e:
                reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                log(f'skipping checkpoint {pathlib.Path(path).name}: it cannot be read ({reason})')
        return None


# ------------------------------------------------------------------------------------------------
# Options.

def check_options(options, where='training options'):
    """``options`` (a run's training_options.json) if well-formed; ValueError naming the first bad entry.
    Checks what a continuation relies on: the types and ranges of the counts, sizes and schedules."""
    import math
    if not isinstance(options, dict):
        raise ValueError(f'{where} must hold a JSON object, got {type(options).__name__}')
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    integer = lambda v: isinstance(v, int) and not isinstance(v, bool)
    checks = {
        'cfg': (lambda v: isinstance(v, str), 'an architecture name'),
        'data': (lambda v: isinstance(v, str) and v != '', 'the dataset path'),
        'batch_size': (lambda v: integer(v) and 1 <= v <= 1 << 20, 'an integer >= 1'),
        'replicas': (lambda v: integer(v) and 1 <= v <= 4096, 'an integer >= 1'),
        'seed': (lambda v: integer(v) and 0 <= v < 2 ** 32, 'an integer in [0, 2^32)'),
        'G_kwargs': (lambda v: isinstance(v, dict), 'an object'),
        'D_kwargs': (lambda v: isinstance(v, dict), 'an object'),
        'loss_kwargs': (lambda v: isinstance(v, dict), 'an object'),
        'G_lr': (lambda v: number(v) and v > 0, 'a number > 0'),
        'D_lr': (lambda v: number(v) and v > 0, 'a number > 0'),
        'total_kimg': (lambda v: number(v) and v >= 0, 'a finite number >= 0'),
        'tick_kimg': (lambda v: number(v) and v > 0, 'a finite number > 0'),
        'snap': (lambda v: integer(v) and v >= 1, 'an integer >= 1'),
    }
    for key, (ok, what) in checks.items():
        if key not in options:
            raise ValueError(f'{where} has no {key!r}')
        if not ok(options[key]):
            raise ValueError(f'{where}: {key} must be {what}, got {str(options[key])[:60]}')
    if options['batch_size'] % options['replicas']:
        raise ValueError(f'{where}: batch_size {options["batch_size"]} is not a multiple of replicas '
                         f'{options["replicas"]}')
    for key in ('minutes', 'log_every'):
        value = options.get(key)
        if value is not None and not (number(value) and value > 0):
            raise ValueError(f'{where}: {key} must be a number > 0 or null, got {str(value)[:60]}')
    batch_gpu = options.get('batch_gpu')
    if batch_gpu is not None and not (integer(batch_gpu) and batch_gpu >= 1 and
                                      (options['batch_size'] // options['replicas']) % batch_gpu == 0):
        raise ValueError(f'{where}: batch_gpu must divide the batch per replica, got {str(batch_gpu)[:60]}')
    return options


def _freeze_layers(num_blocks):
    """NVIDIA's freeze_layers for the first ``num_blocks`` D blocks (fromrgb, conv0, conv1, skip, then 3)."""
    return 0 if num_blocks <= 0 else 4 + 3 * (num_blocks - 1)


def _network_kwargs(init):
    """(architecture, G_kwargs, D_kwargs) of the network ``init`` (NVIDIA .pkl, project or run directory)."""
    from afgan_tf import network_io
    try:
        net = network_io.load_network(init)
    except FileNotFoundError as e:
        raise ValueError(f'init: {e}') from None
    except Exception as e:  # noqa: BLE001 - unreadable or hostile networks: the loaders say why.
        raise ValueError(f'init: cannot load {init}: {e}') from None
    G = net.get('G_ema') or net.get('G')
    if G is None or net.get('D') is None:
        raise ValueError(f'init: {init} must hold a generator and a discriminator to fine-tune')
    G_kwargs = {k: v for k, v in G.get_config().items() if k not in ('name', 'seed')}
    D_kwargs = {k: v for k, v in net['D'].get_config().items() if k not in ('name', 'seed')}
    return G.architecture, G_kwargs, D_kwargs


def training_options(cfg=None, data=None, gamma=None, batch=32, replicas=1, seed=0, kimg=25000, tick=4, snap=50,
                     mirror=False, cond=False, aug='ada', target=0.6, p=0.2, metrics='none', metrics_at='snapshot',
                     metric_num=None, cbase=None, cmax=None, map=None, glr=None, dlr=None, mbstd_group=4,
                     minutes=None, log_every=10, init=None, freezed=0, precision='auto', fp32=False, batch_gpu=None):
    """The options of a new run (training_options.json), NVIDIA's train.py defaults from the preset record.

    ``init`` (an NVIDIA .pkl path or URL, a project network or run directory) starts from that
    network's G, D and G_ema: its architecture and every constructor argument are the network's
    (``cfg``, ``cbase``, ``cmax``, ``map`` must be None or agree), the dataset must match its
    resolution and channels, and NVIDIA's fine-tuning overrides apply (no EMA ramp-up, no blur
    ramp, ada_kimg 100). ``freezed`` freezes the first N discriminator blocks (FreezeD).
    ``precision`` ('auto', 'float32', 'float16', 'bfloat16') is what the top ``num_fp16_res`` = 4
    resolutions compute in, with conv_clamp 256 as NVIDIA's; ``fp32`` turns both off. The dataset is
    read for its resolution, channels and labels. ValueError names a bad argument.
    """
    from afgan_tf.metrics import metric_main
    from afgan_tf.networks import get_preset
    from afgan_tf.training import dataset
    from afgan_tf.training.augment import BGC
    if init is not None:
        architecture, init_G, init_D = _network_kwargs(init)
        given = dict(cfg=(cfg, architecture), cbase=(cbase, init_D.get('channel_base')),
                     cmax=(cmax, init_D.get('channel_max')),
                     map=(map, (init_G.get('mapping_kwargs') or {}).get('num_layers')))
        clashes = [f'--{k} {v} (the network has {n})' for k, (v, n) in given.items() if v is not None and v != n]
        if clashes:
            raise ValueError(f'init: {init} fixes the architecture; these flags contradict it: {", ".join(clashes)}')
        cfg = architecture
    cfg = cfg or 'stylegan3-t'
    cbase, cmax = cbase or 32768, cmax or 512
    preset = get_preset(cfg)
    if not 0 <= freezed <= 64:
        raise ValueError(f'freezed must be in [0, 64], got {freezed}')
    per_replica = batch // max(replicas, 1)
    if batch_gpu is not None and not (isinstance(batch_gpu, int) and 1 <= batch_gpu and per_replica % batch_gpu == 0):
        raise ValueError(f'batch_gpu must be a positive divisor of the batch per replica ({per_replica}), got '
                         f'{batch_gpu!r}')
    round_size = min(batch_gpu or per_replica, per_replica)       # What D sees per call.
    if mbstd_group < 1 or round_size % min(mbstd_group, round_size):
        raise ValueError(f'mbstd_group: the images per round ({round_size}; the batch per replica or --batch-gpu) '
                         f'must be a multiple of the minibatch-std group size ({mbstd_group})')
    if gamma is None or not gamma >= 0:
        raise ValueError(f'gamma must be a number >= 0, got {gamma!r}')
    if batch < 1 or replicas < 1 or batch % replicas:
        raise ValueError(f'batch ({batch}) must be a positive multiple of replicas ({replicas})')
    if not 0 <= p <= 1 or not 0 < target < 1:
        raise ValueError(f'p must be in [0, 1] and target in (0, 1), got {p}, {target}')
    if aug not in ('noaug', 'ada', 'fixed'):
        raise ValueError(f"aug must be 'noaug', 'ada' or 'fixed', got {aug!r}")
    if metrics_at not in ('snapshot', 'end'):
        raise ValueError(f"metrics_at must be 'snapshot' or 'end', got {metrics_at!r}")
    unmet = metric_main.unmet_needs(metric_main.parse_metric_list(metrics), preset)
    if unmet:
        raise ValueError('metrics: ' + '; '.join(unmet))
    info = dataset.describe(data)
    if init is not None:
        cond = cond or bool(init_G.get('c_dim'))
        net_shape = (init_G['img_resolution'], init_G['img_channels'])
        if (info['resolution'], info['channels']) != net_shape:
            raise ValueError(f'data: {data} holds {info["resolution"]}x{info["resolution"]} images with '
                             f'{info["channels"]} channel(s); the network {init} makes {net_shape[0]}x{net_shape[0]} '
                             f'images with {net_shape[1]} channel(s)')
    if cond and info['c_dim'] == 0:
        raise ValueError('cond: the dataset has no labels')
    c_dim = info['c_dim'] if cond else 0
    if init is not None and c_dim != init_G.get('c_dim', 0):
        raise ValueError(f'data: the dataset has {c_dim} classes, the network {init} {init_G.get("c_dim", 0)}')
    multiplier = preset.channel_multiplier
    reduced = dict(num_fp16_res=0, conv_clamp=None) if fp32 else dict(num_fp16_res=4, conv_clamp=256)
    G_kwargs = dict(architecture=cfg, z_dim=512, w_dim=512, img_resolution=info['resolution'], **reduced,
                    img_channels=info['channels'], c_dim=c_dim, channel_base=cbase * multiplier,
                    channel_max=cmax * multiplier, mapping_kwargs=dict(map and {'num_layers': map} or
                                                                       preset.mapping_kwargs))
    if preset.magnitude_ema:
        G_kwargs['magnitude_ema_beta'] = 0.5 ** (batch / 20000)
    G_kwargs.update({k: v for k, v in preset.synthesis_kwargs.items() if k not in ('channel_base', 'channel_max')})
    D_kwargs = dict(img_resolution=info['resolution'], img_channels=info['channels'], c_dim=c_dim, channel_base=cbase,
                    channel_max=cmax, epilogue_kwargs=dict(mbstd_group_size=mbstd_group), **reduced)
    if precision not in ('auto', 'float32', 'float16', 'bfloat16'):
        raise ValueError(f"precision must be 'auto', 'float32', 'float16' or 'bfloat16', got {precision!r}")
    if init is not None:                     # The network's own arguments, exactly (the group is a batch setting).
        G_kwargs, D_kwargs = dict(init_G), dict(init_D)
        D_kwargs['epilogue_kwargs'] = {**(D_kwargs.get('epilogue_kwargs') or {}), 'mbstd_group_size': mbstd_group}
        if preset.magnitude_ema:
            G_kwargs['magnitude_ema_beta'] = 0.5 ** (batch / 20000)
    D_kwargs['block_kwargs'] = {**(D_kwargs.get('block_kwargs') or {}), 'freeze_layers': _freeze_layers(freezed)}
    augment = dict(augment_p=p if aug == 'fixed' else 0.0, ada_target=target if aug == 'ada' else None,
                   ada_interval=4, ada_kimg=100 if init is not None else 500)
    fine_tune = init is not None            # NVIDIA's overrides when starting from a pickle.
    return dict(cfg=cfg, data=_absolute(data), data_fingerprint=info['fingerprint'],
                init=None if init is None else _absolute(init), freezed=freezed,
                precision='float32' if fp32 else precision,
                batch_size=batch, replicas=replicas, batch_gpu=batch_gpu, seed=seed, G_kwargs=G_kwargs,
                D_kwargs=D_kwargs,
                G_lr=glr or preset.G_lr, D_lr=dlr or preset.D_lr, G_reg_interval=preset.G_reg_interval,
                D_reg_interval=preset.D_reg_interval, augment_kwargs=dict(BGC) if aug != 'noaug' else None,
                metrics=metrics, metrics_at=metrics_at, metric_num=metric_num,
                loss_kwargs=dict(r1_gamma=gamma, r1_interval=preset.D_reg_interval,
                                 style_mixing_prob=preset.style_mixing_prob, pl_weight=preset.pl_weight,
                                 pl_interval=preset.G_reg_interval, **augment,
                                 blur_init_sigma=0.0 if fine_tune else preset.blur_init_sigma,
                                 blur_fade_kimg=batch * preset.blur_fade_kimg_per_batch,
                                 ema_kimg=batch * 10 / 32, ema_rampup=None if fine_tune else 0.05),
                total_kimg=kimg, tick_kimg=tick, snap=snap, mirror=mirror, cond=cond, aug=aug, minutes=minutes,
                log_every=log_every)


def _absolute(path):
    """An absolute local path; URLs (gs://, https://, ...) unchanged."""
    return str(path) if '://' in str(path) else str(pathlib.Path(path).resolve())


# Reduced precision on a CPU: measured on the development machine (benchmarks/bench_train_step.py),
# bfloat16 training steps were slower than float32 (no AVX512-BF16), so 'auto' keeps float32 there.
CPU_REDUCED_PRECISION = 'float32'


def resolve_precision(precision):
    """'auto' -> float16 on a GPU, CPU_REDUCED_PRECISION on a CPU; others as given."""
    import tensorflow as tf
    from afgan_tf.layers import check_precision
    if precision == 'auto':
        return 'float16' if tf.config.list_physical_devices('GPU') else CPU_REDUCED_PRECISION
    return check_precision(precision)


def build_gan(options, label_pool=None):
    """G, D, G_ema and the GAN of ``options`` (call inside the strategy's scope), compiled. The top
    ``num_fp16_res`` resolutions compute in ``options['precision']`` (float16 adds loss scaling)."""
    import keras

    import afgan_tf
    from afgan_tf.training.augment import AugmentPipe
    from afgan_tf.training.gan import GAN
    from afgan_tf.training.optimizers import lazy_adam
    G = afgan_tf.Generator(seed=options['seed'], **options['G_kwargs'])
    G_ema = afgan_tf.Generator.from_config(G.get_config())
    for src, dst in zip(G.weights, G_ema.weights):
        dst.assign(src)
    D = afgan_tf.Discriminator(seed=options['seed'] + 1, **options['D_kwargs'])
    precision = resolve_precision(options.get('precision', 'float32'))
    for model in (G, G_ema, D):
        model.set_precision(precision)
    pipe = AugmentPipe(**options['augment_kwargs']) if options.get('augment_kwargs') else None
    gan = GAN(G, D, G_ema, batch_size=options['batch_size'], augment_pipe=pipe, seed=options['seed'],
              batch_gpu=options.get('batch_gpu'),
              label_pool=label_pool if G.c_dim else None, **options['loss_kwargs'])
    optimizers = [lazy_adam(options['G_lr'], options.get('G_reg_interval')),
                  lazy_adam(options['D_lr'], options.get('D_reg_interval', 16))]
    if precision == 'float16':
        optimizers = [keras.optimizers.LossScaleOptimizer(o) for o in optimizers]
    gan.compile(g_optimizer=optimizers[0], d_optimizer=optimizers[1])
    return gan


# ------------------------------------------------------------------------------------------------
# The loop.

def _copy_weights(init, gan, log):
    """G, D and G_ema of a new fine-tuning run from the network ``init`` (NVIDIA's reference names)."""
    from afgan_tf import network_io
    net = network_io.load_network(init)
    sources = {'G': net.get('G') or net.get('G_ema'), 'G_ema': net.get('G_ema') or net.get('G'), 'D': net['D']}
    for name, source in sources.items():
        target = getattr(gan, name)
        values = {k: v.numpy() for k, v in source.reference_variables().items()}
        for key, var in target.reference_variables().items():
            var.assign(values[key])
    log(f'initialised G, D and G_ema from {init}')


def _is_chief(strategy):
    import tensorflow as tf
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type == 'chief' or (resolver.task_type == 'worker' and resolver.task_id == 0 and
                                             'chief' not in resolver.cluster_spec().as_dict())


def train(options, run_dir, strategy=None, log=print):
    """Trains (or continues) the run of ``options`` in ``run_dir``; returns the run directory.

    Args:
        options: the run's options (``training_options`` / training_options.json).
        run_dir: its run directory (a path or RunDir). If it holds checkpoints, training continues
            from the newest intact one; otherwise it is created when training starts, and removed
            again if training fails before its first checkpoint.
        strategy: a tf.distribute strategy (default: the current one).
        log: progress messages.

    Raises:
        TrainingError: the run directory cannot be written (the last checkpoint stays intact), or the
            dataset cannot serve the run.
    """
    import tensorflow as tf
    from afgan_tf import network_io
    from afgan_tf.metrics import metric_main
    from afgan_tf.training import callbacks, dataset
    strategy = strategy or tf.distribute.get_strategy()
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    resuming = bool(run.checkpoint_dir.is_dir() and run.checkpoints())
    reader = dataset.DatasetReader.open(options['data'])
    shape = (reader.resolution, reader.resolution, reader.channels)
    G_shape = (options['G_kwargs']['img_resolution'],) * 2 + (options['G_kwargs']['img_channels'],)
    if shape != G_shape:
        raise TrainingError(f'{options["data"]} holds {shape[0]}x{shape[1]}x{shape[2]} images; the networks are '
                            f'{G_shape[0]}x{G_shape[1]}x{G_shape[2]}')
    labels = reader.labels
    c_dim = options['G_kwargs'].get('c_dim', 0)
    batch = options['batch_size']
    tf.keras.utils.set_random_seed(options['seed'])
    with strategy.scope():
        gan = build_gan(options, label_pool=labels)
    checkpoint = RunDir.checkpoint(gan.G, gan.D, gan.G_ema, gan)
    if not resuming and options.get('init'):
        _copy_weights(options['init'], gan, log)
    if resuming:
        run.remove_stale_temporaries(log)
        restored = run.restore_newest(checkpoint, log=log)
        if restored is None:
            raise TrainingError(f'{run.path}: no checkpoint could be read back (see the messages above)')
        log(f'resumed from {restored} at step {int(gan.step.numpy())}, kimg {float(gan.nimg.numpy()) / 1000:.3f}')
    log(f'run dir {run.path}: {reader.num_images} images {shape[0]}x{shape[1]}x{shape[2]}, {options["cfg"]}, '
        f'batch {batch}, {strategy.num_replicas_in_sync} replica(s)')

    # The data order is a function of (seed, epoch): a continued run starts at its step's position.
    start = int(gan.step.numpy()) * batch
    ds = strategy.distribute_datasets_from_function(lambda ctx: dataset.make_dataset(
        reader, batch, c_dim=c_dim, xflip=options['mirror'], seed=options['seed'], input_context=ctx,
        start=start))
    steps_per_tick = max(1, int(round(options['tick_kimg'] * 1000 / batch)))
    total_kimg = options['total_kimg']
    remaining = max(0.0, total_kimg - float(gan.nimg.numpy()) / 1000)
    epochs = int(np.ceil(remaining * 1000 / batch / (steps_per_tick * options['snap'])))
    grid_z = np.random.RandomState(options['seed']).randn(16, gan.G.z_dim).astype(np.float32)
    grid_c = np.eye(c_dim, dtype=np.float32)[np.arange(16) % c_dim] if c_dim else None
    created = not run.path.exists()
    try:
        run.path.mkdir(parents=True, exist_ok=True)
        if not run.options_file.is_file():
            run.write_options(options)
        clock = callbacks.TrainingClock(run.read_state().get('train_seconds', 0.0) if resuming else 0.0)
        saver = callbacks.Checkpointer(run.manager(checkpoint), gan, run, clock)
        grids = callbacks.SampleGrid(gan, run, grid_z, grid_c, grid=(4, 4))
        cbs = [callbacks.Progress(gan, total_kimg, options.get('log_every', 10), run.log_dir, options.get('minutes'),
                                  clock=clock),
               grids, saver, callbacks.TimeLimit(gan, options.get('minutes'), total_kimg, clock)]
        metric_specs = metric_main.parse_metric_list(options.get('metrics'))
        metrics_cb = None
        if metric_specs:
            metrics_cb = callbacks.Metrics(gan, metric_specs, options['data'], run, num_gen=options.get('metric_num'),
                                           clock=clock)
            if options.get('metrics_at', 'snapshot') == 'snapshot':
                cbs.insert(3, metrics_cb)   # After the checkpoint, so a snapshot's metrics name its checkpoint.
        if epochs > 0:
            gan.fit(ds, epochs=epochs, steps_per_epoch=steps_per_tick * options['snap'], callbacks=cbs, verbose=0,
                    shuffle=False)
        saver.save()
        grids.write('_final')
        if metrics_cb is not None and metrics_cb.last_step != int(gan.step.numpy()):
            metrics_cb.compute()
        network_io.save_network(run.final_network, {'G': gan.G, 'D': gan.D, 'G_ema': gan.G_ema},
                                extras={'architecture': options['cfg'], 'kimg': float(gan.nimg.numpy()) / 1000},
                                overwrite=True)
    except (tf.errors.PermissionDeniedError, PermissionError, tf.errors.ResourceExhaustedError, OSError) as e:
        if created and not run.checkpoints():
            shutil.rmtree(run.path, ignore_errors=True)
            raise TrainingError(f'cannot write the run directory {run.path}: {e}') from None
        intact = run.checkpoints()
        raise TrainingError(f'cannot write the run directory {run.path} ({str(e).splitlines()[0]}); the last '
                            f'checkpoint, {pathlib.Path(intact[0]).name if intact else "none"}, is intact: make the '
                            f'directory writable and continue with --resume {run.path}') from None
    except BaseException:
        if created and not run.checkpoints():      # Nothing worth keeping: no half-made run directory.
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    log(f'done: step {int(gan.step.numpy())}, kimg {float(gan.nimg.numpy()) / 1000:.3f}; '
        f'samples {run.fakes("_final")}, network {run.final_network}')
    return run
