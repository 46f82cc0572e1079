"""Keras callbacks of a training run: progress line, sample grids, checkpoints, time budget, metrics.

Paths come from the run's ``training_loop.RunDir``."""

import pathlib
import time

import numpy as np
import tensorflow as tf
import keras

from afgan_tf import image_writing as images


class TrainingClock:
    """Training time of a run in seconds, metric evaluation left out, carried over a resume.

    ``offset`` is the training time of the run's earlier processes (its state file's ``train_seconds``).
    ``pause()`` / ``resume()`` bracket work that is not training (metrics)."""

    def __init__(self, offset=0.0):
        self.offset, self.start, self.paused_seconds, self._paused_at = float(offset), None, 0.0, None

    def begin(self):
        if self.start is None:
            self.start = time.time()

    def pause(self):
        self._paused_at = time.time()

    def resume(self):
        if self._paused_at is not None:
            self.paused_seconds += time.time() - self._paused_at
            self._paused_at = None

    def this_process(self):
        """Training seconds of this process so far."""
        if self.start is None:
            return 0.0
        now = self._paused_at if self._paused_at is not None else time.time()
        return now - self.start - self.paused_seconds

    def total(self):
        """Training seconds of the whole run so far."""
        return self.offset + self.this_process()


class Progress(keras.callbacks.Callback):
    """Prints 'kimg, sec/kimg, losses, ETA' every ``every`` steps and logs them to TensorBoard.

    With a ``clock`` (``TrainingClock``), sec/kimg and the ETA count training time only (metric
    evaluation left out), as ``--minutes`` does."""

    def __init__(self, gan, total_kimg, every=10, log_dir=None, minutes=None, clock=None):
        super().__init__()
        self.gan, self.total_kimg, self.every, self.minutes = gan, float(total_kimg), int(every), minutes
        self.clock = clock
        self.writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None
        self.start_time = self.start_kimg = None

    def on_train_begin(self, logs=None):
        self.start_time, self.start_kimg = time.time(), self.kimg()
        self.start_clock = self.clock.this_process() if self.clock else 0.0

    def elapsed(self):
        """Seconds of training in this process since training began (wall time without a clock)."""
        if self.clock is not None:
            return self.clock.this_process() - self.start_clock
        return time.time() - self.start_time

    def kimg(self):
        return float(self.gan.nimg.numpy()) / 1000

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.gan.step.numpy())
        if step % self.every:
            return
        kimg = self.kimg()
        done = max(kimg - self.start_kimg, 1e-9)
        elapsed = self.elapsed()
        sec_per_kimg = elapsed / done
        eta = max(self.total_kimg - kimg, 0) * sec_per_kimg
        if self.minutes is not None:        # A time budget ends the run sooner.
            used = self.clock.this_process() if self.clock is not None else elapsed
            eta = min(eta, max(self.minutes * 60 - used, 0))
        logs = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in (logs or {}).items()}
        print(f'kimg {kimg:8.3f}  step {step:6d}  sec/kimg {sec_per_kimg:7.2f}  '
              + '  '.join(f'{k} {v:.4f}' for k, v in sorted(logs.items()))
              + f'  augment {float(self.gan.augment_p.numpy()):.3f}  blur {float(self.gan.blur_sigma()):.2f}'
              + f'  eta {eta / 60:.1f} min', flush=True)
        if self.writer:
            with self.writer.as_default(step=step):
                for k, v in logs.items():
                    tf.summary.scalar(f'Loss/{k}', v)
                tf.summary.scalar('Progress/kimg', kimg)
                tf.summary.scalar('Progress/augment', float(self.gan.augment_p.numpy()))
                tf.summary.scalar('Timing/sec_per_kimg', sec_per_kimg)
                tf.summary.scalar('Progress/lr_G', float(keras.ops.convert_to_numpy(
                    self.gan.g_optimizer.learning_rate)))
                tf.summary.scalar('Progress/lr_D', float(keras.ops.convert_to_numpy(
                    self.gan.d_optimizer.learning_rate)))


class SampleGrid(keras.callbacks.Callback):
    """Writes a grid of G_ema images from fixed latents at the start and after every epoch, each sample
    enlarged (nearest neighbour) to about 128 pixels so that small ones can be seen."""

    def __init__(self, gan, run, z, c=None, grid=None, scale=None):
        super().__init__()
        self.gan, self.run, self.z, self.c, self.grid = gan, run, z, c, grid
        self.scale = images.grid_scale(gan.G.img_resolution) if scale is None else scale
        self.writer = tf.summary.create_file_writer(str(run.log_dir))

    def write(self, tag):
        img = self.gan.G_ema(self.z, self.c).numpy()
        canvas = images.save_image_grid(self.run.fakes(tag), img, grid=self.grid, scale=self.scale)
        if self.writer:
            with self.writer.as_default(step=int(self.gan.step.numpy())):
                tf.summary.image('Samples/G_ema', canvas[np.newaxis])
        return canvas

    def on_train_begin(self, logs=None):
        if not self.run.fakes('_init').exists():
            self.write('_init')

    def on_epoch_end(self, epoch, logs=None):
        self.write(f'{int(self.gan.nimg.numpy()) // 1000:06d}')


class Checkpointer(keras.callbacks.Callback):
    """Saves a tf.train checkpoint after every epoch (and at the end of training)."""

    def __init__(self, manager, gan, run, clock=None):
        super().__init__()
        self.manager, self.gan, self.run, self.clock = manager, gan, run, clock

    def save(self):
        path = self.manager.save(checkpoint_number=int(self.gan.step.numpy()))
        state = {'checkpoint': pathlib.Path(path).name, 'step': int(self.gan.step.numpy()),
                 'kimg': float(self.gan.nimg.numpy()) / 1000}
        if self.clock is not None:
            state['train_seconds'] = round(self.clock.total(), 3)
        self.run.write_state(state)
        return path

    def on_epoch_end(self, epoch, logs=None):
        self.save()


class TimeLimit(keras.callbacks.Callback):
    """Stops training after ``minutes`` of training in this process (metric evaluation not counted;
    checked after every step) or at ``total_kimg``."""

    def __init__(self, gan, minutes=None, total_kimg=None, clock=None):
        super().__init__()
        self.gan, self.minutes, self.total_kimg = gan, minutes, total_kimg
        self.clock = clock or TrainingClock()

    def on_train_begin(self, logs=None):
        self.clock.begin()

    def on_train_batch_end(self, batch, logs=None):
        if self.minutes is not None and self.clock.this_process() > self.minutes * 60:
            self.model.stop_training = True
        if self.total_kimg is not None and float(self.gan.nimg.numpy()) >= self.total_kimg * 1000:
            self.model.stop_training = True


class Metrics(keras.callbacks.Callback):
    """Computes metrics (``afgan_tf.metrics`` names) on G_ema after every epoch (snapshot): prints a JSON
    line per metric, logs ``Metrics/<name>`` to TensorBoard and appends to ``run_dir/metric-<name>.jsonl``."""

    def __init__(self, gan, specs, data, run, num_gen=None, clock=None):
        super().__init__()
        from afgan_tf.metrics import metric_main
        self.gan, self.specs, self.run, self.clock = gan, specs, run, clock
        log = lambda m: print(m, flush=True)
        self.ctx = metric_main.MetricContext(gan.G_ema, data, num_gen=num_gen, log=log,
                                             progress=metric_main.LineProgress(log))
        self.writer = tf.summary.create_file_writer(str(run.log_dir))
        self.last_step = None

    def compute(self):
        from afgan_tf.metrics import metric_main
        step = int(self.gan.step.numpy())
        snapshot = self.run.read_state().get('checkpoint')
        results = []
        if self.clock is not None:
            self.clock.pause()
        try:
            for spec in self.specs:
                results.append(self._compute_one(metric_main, spec, step, snapshot))
        finally:
            if self.clock is not None:
                self.clock.resume()
        self.last_step = step
        return results

    def _compute_one(self, metric_main, spec, step, snapshot):
        result = metric_main.compute(spec, self.ctx)
        result['kimg'] = float(self.gan.nimg.numpy()) / 1000
        if self.clock is not None:
            result['train_minutes'] = round(self.clock.total() / 60, 3)
        print(metric_main.report(result, str(self.run.path), snapshot=snapshot), flush=True)
        if self.writer:
            with self.writer.as_default(step=step):
                for name, value in result['results'].items():
                    tf.summary.scalar(f'Metrics/{name}', value)
        return result

    def on_epoch_end(self, epoch, logs=None):
        self.compute()
