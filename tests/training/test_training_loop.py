"""afgan_tf.training.training_loop: training as a library (options, RunDir, train)."""

import json

from conftest import tiny_data


def test_train_as_a_library_without_flags(tmp_path):
    """afgan_tf.training.train(options, run_dir): the options have the keys of training_options.json."""
    from afgan_tf import network_io, training
    data = tiny_data(tmp_path)
    options = training.training_options(cfg='stylegan3-t', data=data, gamma=0.5, batch=4, cbase=256, cmax=16,
                                        kimg=0.008, tick=0.008, snap=1, log_every=1)
    run = training.train(options, tmp_path / 'run', log=lambda m: None)
    stored = json.loads((tmp_path / 'run' / 'training_options.json').read_text())
    assert stored == json.loads(json.dumps(options)) and run.read_state()['step'] == 2
    assert network_io.load_network(tmp_path / 'run' / 'network-final')['G_ema'].img_resolution == 16
