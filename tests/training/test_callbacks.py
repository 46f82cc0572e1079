"""training/callbacks.py: the training clock and the progress line (metric time left out)."""

import types

import pytest
import tensorflow as tf

from afgan_tf.training import callbacks


class FakeTime:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fake_gan():
    return types.SimpleNamespace(nimg=tf.Variable(0, dtype=tf.int64), step=tf.Variable(0, dtype=tf.int64),
                                 augment_p=tf.Variable(0.0), blur_sigma=lambda: 0.0)


def test_clock_leaves_out_paused_time_and_carries_an_offset(monkeypatch):
    now = FakeTime()
    monkeypatch.setattr(callbacks.time, 'time', now)
    clock = callbacks.TrainingClock(offset=30.0)
    assert clock.this_process() == 0.0
    clock.begin()
    now.now += 10
    clock.pause()
    now.now += 500                   # A metric: not training time.
    assert clock.this_process() == pytest.approx(10)
    clock.resume()
    now.now += 5
    assert clock.this_process() == pytest.approx(15) and clock.total() == pytest.approx(45)


def test_progress_line_counts_training_time_only(monkeypatch, capsys):
    now = FakeTime()
    monkeypatch.setattr(callbacks.time, 'time', now)
    gan, clock = fake_gan(), callbacks.TrainingClock()
    progress = callbacks.Progress(gan, total_kimg=100, every=1, minutes=10, clock=clock)
    progress.on_train_begin()
    clock.begin()
    now.now += 60                     # 1 kimg in 60 s of training ...
    clock.pause()
    now.now += 3000                   # ... then a 50-minute metric ...
    clock.resume()
    gan.nimg.assign(1000)
    gan.step.assign(1)
    progress.on_train_batch_end(0)
    line = capsys.readouterr().out
    assert 'sec/kimg   60.00' in line            # ... which sec/kimg leaves out,
    assert 'eta 9.0 min' in line                 # and the 10-minute budget has 9 minutes left.
