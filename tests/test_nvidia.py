"""afgan_tf.nvidia: NVIDIA network pickles become our models (parity with the reference outputs)."""

import io
import pickle

import numpy as np
import pytest

from afgan_tf import nvidia, torch_pickle

from conftest import TOL, max_abs, nhwc, rewrite_strings


def test_g_ema_and_d_reproduce_reference(snapshot):
    _, net, io_ = snapshot
    G = net['G_ema']
    assert net['architecture'] == 'stylegan3-t'
    assert max_abs(G.synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    assert max_abs(G(io_['z'], truncation_psi=0.7), nhwc(io_['img_trunc07'])) < TOL
    assert max_abs(G.synthesis(io_['ws'], transform=io_['xform_matrix']), nhwc(io_['img_xform'])) < TOL
    assert max_abs(net['D'](nhwc(io_['img'])), io_['d_logits']) < TOL
    assert max_abs(net['D'](nhwc(io_['d_input_real'])), io_['d_logits_real']) < TOL


def test_g_differs_from_g_ema_as_stored(snapshot):
    path, net, io_ = snapshot
    raw = torch_pickle.load(open(path, 'rb'))
    stored_G = torch_pickle.module_state_dict(raw['G'])
    ours_G = nvidia.state_dict(net['G'])
    for key, value in stored_G.items():
        assert np.allclose(ours_G[key], value), key
    assert max_abs(net['G'].synthesis(io_['ws']), net['G_ema'].synthesis(io_['ws'])) > 1e-3


def test_extras(snapshot):
    _, net, _ = snapshot
    assert 0 <= net['augment_p'] <= 1
    assert net['augment_kwargs']['xflip'] == 1
    assert net['training_set_kwargs']['resolution'] == 32


def test_truncated_file_gives_clear_error(tmp_path, snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    for size in (10, len(data) // 2, len(data) - 5):
        with pytest.raises(pickle.UnpicklingError, match='truncated or corrupt'):
            nvidia.load_network_pkl(io.BytesIO(data[:size]))


def test_numpy_1x_names_load(snapshot):
    path, net, io_ = snapshot
    data = path.read_bytes()
    assert b'numpy._core.multiarray' in data
    old = rewrite_strings(data, {'numpy._core.multiarray': 'numpy.core.multiarray'})
    assert b'numpy._core.multiarray' not in old and b'numpy.core.multiarray' in old
    net_old = nvidia.load_network_pkl(io.BytesIO(old))
    assert max_abs(net_old['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL


def test_unknown_classes_are_named(snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    with pytest.raises(ValueError, match="unknown class 'Gen3rator'"):
        nvidia.load_network_pkl(io.BytesIO(rewrite_strings(data, {'Generator': 'Gen3rator'})))
    with pytest.raises(ValueError, match=r"unknown classes \['WeirdLayer'\]"):
        nvidia.load_network_pkl(io.BytesIO(rewrite_strings(data, {'FullyConnectedLayer': 'WeirdLayer'})))
