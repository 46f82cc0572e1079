"""afgan_tf.network_io: the project's network directories, run directories, pickles and format checks."""

import json

import numpy as np
import pytest

import afgan_tf
from afgan_tf import network_io

from conftest import TOL, max_abs, nhwc


def _tiny_generator():
    return afgan_tf.Generator('stylegan3-t', z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=256,
                              channel_max=16, seed=3)


def test_save_and_load_round_trip(tmp_path):
    G = _tiny_generator()
    network_io.save_network(tmp_path / 'net', {'G_ema': G}, extras={'architecture': 'stylegan3-t', 'kimg': 1.5})
    assert network_io.is_network_dir(tmp_path / 'net')
    net = network_io.load_network(tmp_path / 'net')
    z = np.random.default_rng(0).standard_normal([2, 8]).astype(np.float32)
    assert np.array_equal(net['G_ema'](z).numpy(), G(z).numpy()) and net['kimg'] == 1.5
    with pytest.raises(FileExistsError):
        network_io.save_network(tmp_path / 'net', {'G_ema': G})
    network_io.save_network(tmp_path / 'net', {'G_ema': G}, overwrite=True)


def test_refuses_unknown_formats(tmp_path):
    with pytest.raises(FileNotFoundError):
        network_io.load_network(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='without networks.json'):
        network_io.load_network(tmp_path / 'empty')
    (tmp_path / 'file.bin').write_bytes(b'GIF89a')
    with pytest.raises(ValueError, match='unknown network format'):
        network_io.load_network(tmp_path / 'file.bin')
    network_io.save_network(tmp_path / 'newer', {'G_ema': _tiny_generator()})
    meta = json.loads((tmp_path / 'newer' / 'networks.json').read_text())
    (tmp_path / 'newer' / 'networks.json').write_text(json.dumps({**meta, 'version': 999}))
    with pytest.raises(ValueError, match='newer afgan_tf'):
        network_io.load_network(tmp_path / 'newer')


def test_load_network_dispatch(tmp_path, snapshot):
    path, _, io_ = snapshot
    assert max_abs(network_io.load_network(path)['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    with pytest.raises(FileNotFoundError):
        network_io.load_network(tmp_path / 'missing')
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(ValueError, match='unknown network format'):
        network_io.load_network(tmp_path / 'notes.txt')
    with pytest.raises(ValueError, match='without networks.json'):
        network_io.load_network(tmp_path)
    with pytest.raises(FileExistsError):
        network_io.save_network(tmp_path, {})
