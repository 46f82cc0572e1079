"""Generator and discriminator parity with the reference networks, presets, serialisation, and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import afgan_tf
from afgan_tf import nvidia

from conftest import NETWORKS, TOL, max_abs, nhwc


@pytest.mark.parametrize('name', NETWORKS)
def test_mapping_matches_reference(load_reference_network, name):
    net = load_reference_network(name)
    io = net.io
    assert max_abs(net.G.mapping(io['z']), io['ws']) < TOL
    assert max_abs(net.G.mapping(io['z'], truncation_psi=0.7), io['ws_trunc07']) < TOL


@pytest.mark.parametrize('name', NETWORKS)
def test_images_match_reference(load_reference_network, name):
    net = load_reference_network(name)
    io = net.io
    img = net.G.synthesis(io['ws'])
    assert img.shape == nhwc(io['img']).shape and img.dtype == tf.float32
    assert max_abs(img, nhwc(io['img'])) < TOL
    assert max_abs(net.G(io['z'], truncation_psi=0.7), nhwc(io['img_trunc07'])) < TOL
    if 'img_xform' in io:
        assert max_abs(net.G.synthesis(io['ws'], transform=io['xform_matrix']), nhwc(io['img_xform'])) < TOL
        # The transform is per call, not state: the next call without one is unchanged.
        assert max_abs(net.G.synthesis(io['ws']), nhwc(io['img'])) < TOL
    if 'img_nonoise' in io:
        assert max_abs(net.G.synthesis(io['ws'], noise_mode='none'), nhwc(io['img_nonoise'])) < TOL


@pytest.mark.parametrize('name', ['stylegan3-t_32', 'stylegan3-r_32'])
def test_every_stylegan3_activation_matches_reference(load_reference_network, name):
    net = load_reference_network(name)
    _, acts = net.G.synthesis(net.io['ws'][:1], return_activations=True)
    names = ['input'] + net.G.synthesis.layer_names
    assert len(names) == 16
    for layer in names:
        stored = nhwc(net.io[f'act_{layer}'])     # The trimmed reference keeps the first channels.
        assert acts[layer].shape[:3] == stored.shape[:3], layer
        assert max_abs(acts[layer][..., :stored.shape[-1]], stored) < TOL, layer


@pytest.mark.parametrize('name', NETWORKS)
def test_discriminator_matches_reference(load_reference_network, name):
    net = load_reference_network(name)
    io = net.io
    assert max_abs(net.D(nhwc(io['img'])), io['d_logits']) < TOL
    assert max_abs(net.D(nhwc(io['d_input_real'])), io['d_logits_real']) < TOL


def test_state_dict_round_trip(load_reference_network):
    net = load_reference_network('stylegan3-t_32')
    exported = nvidia.state_dict(net.G)
    assert set(exported) == set(net.G_state)
    for key, value in net.G_state.items():
        assert np.allclose(exported[key], value, atol=1e-6), key


def test_noise_modes():
    G = _small('stylegan2')
    for name, var in G.reference_variables().items():
        if name.endswith('noise_strength'):
            var.assign(0.5)
    ws = np.zeros([1, G.num_ws, 16], np.float32)
    a, b = G.synthesis(ws, noise_mode='random'), G.synthesis(ws, noise_mode='random')
    assert max_abs(a, b) > 1e-3
    assert max_abs(G.synthesis(ws, noise_mode='const'), G.synthesis(ws, noise_mode='const')) == 0
    assert max_abs(G.synthesis(ws, noise_mode='const'), G.synthesis(ws, noise_mode='none')) > 1e-3


def _small(arch):
    return afgan_tf.Generator(arch, z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=512,
                              channel_max=32, seed=3)


@pytest.mark.parametrize('arch', ['stylegan3-t', 'stylegan3-r', 'stylegan2'])
def test_config_round_trip_and_weights(tmp_path, arch):
    G = _small(arch)
    z = np.random.default_rng(0).standard_normal([2, 16]).astype(np.float32)
    img = G(z)
    assert img.shape == (2, 16, 16, 3)
    G2 = afgan_tf.Generator.from_config(G.get_config())
    assert G2.get_config() == G.get_config()
    assert G2.num_ws == G.num_ws
    assert max_abs(G2(z), img) < 1e-6      # Same seed -> same initial weights.
    G3 = afgan_tf.Generator(arch, z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=512,
                            channel_max=32, seed=4)
    assert max_abs(G3(z), img) > 1e-3
    path = str(tmp_path / 'g.weights.h5')
    G.save_weights(path)
    G3.load_weights(path)
    assert max_abs(G3(z), img) < 1e-6


def test_discriminator_config_and_weights(tmp_path):
    D = afgan_tf.Discriminator(img_resolution=16, img_channels=3, channel_base=512, channel_max=32, seed=1)
    x = np.random.default_rng(0).standard_normal([4, 16, 16, 3]).astype(np.float32)
    logits = D(x)
    assert logits.shape == (4, 1)
    D2 = afgan_tf.Discriminator.from_config(D.get_config())
    assert max_abs(D2(x), logits) < 1e-6
    D3 = afgan_tf.Discriminator(img_resolution=16, img_channels=3, channel_base=512, channel_max=32, seed=2)
    path = str(tmp_path / 'd.weights.h5')
    D.save_weights(path)
    D3.load_weights(path)
    assert max_abs(D3(x), logits) < 1e-6


def test_keras_model_save_and_load(tmp_path):
    G = _small('stylegan3-t')
    z = np.ones([1, 16], np.float32)
    path = str(tmp_path / 'g.keras')
    G.save(path)
    G2 = keras.models.load_model(path)
    assert isinstance(G2, afgan_tf.Generator)
    assert max_abs(G2(z), G(z)) < 1e-6


def test_conditional_generator_and_discriminator():
    G = afgan_tf.Generator('stylegan2', z_dim=8, w_dim=8, c_dim=4, img_resolution=8, channel_base=64,
                           channel_max=8, mapping_kwargs=dict(num_layers=2))
    D = afgan_tf.Discriminator(img_resolution=8, c_dim=4, channel_base=64, channel_max=8)
    c = np.eye(4, dtype=np.float32)
    z = np.zeros([4, 8], np.float32)
    img = G(z, c)
    assert img.shape == (4, 8, 8, 3)
    assert max_abs(img[0], img[1]) > 0            # Same z, different labels.
    assert D(img, c).shape == (4, 1)
    with pytest.raises(ValueError, match='c is required'):
        G(z)


def test_tf_function_matches_eager(load_reference_network):
    net = load_reference_network('stylegan3-r_32')
    fn = tf.function(lambda ws: net.G.synthesis(ws, impl='ref'))
    assert max_abs(fn(net.io['ws']), nhwc(net.io['img'])) < TOL


def test_update_emas_changes_averages():
    G = _small('stylegan3-t')
    w_avg = G.mapping.w_avg.numpy().copy()
    ema = G.synthesis.L0_36_32.magnitude_ema.numpy() if hasattr(G.synthesis, 'L0_36_32') else None
    first = getattr(G.synthesis, G.synthesis.layer_names[0])
    ema = first.magnitude_ema.numpy()
    G(np.ones([2, 16], np.float32), update_emas=True)
    assert not np.allclose(G.mapping.w_avg.numpy(), w_avg)
    assert first.magnitude_ema.numpy() != ema


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match='architecture'):
        afgan_tf.Generator('stylegan4')
    with pytest.raises(ValueError, match='img_resolution'):
        afgan_tf.Generator('stylegan3-t', img_resolution=100)
    with pytest.raises(ValueError, match='img_resolution'):
        afgan_tf.Discriminator(img_resolution=48)
    with pytest.raises(ValueError, match='img_channels'):
        afgan_tf.Generator('stylegan2', img_resolution=16, img_channels=0)
    with pytest.raises(ValueError, match='img_channels'):
        afgan_tf.Discriminator(img_resolution=16, img_channels=0)


@pytest.mark.parametrize('arch', ['stylegan3-t', 'stylegan2'])
def test_bad_call_shapes(arch):
    G = _small(arch)
    with pytest.raises(ValueError, match=r'z must have shape \[N, 16\]'):
        G(np.zeros([2, 15], np.float32))
    with pytest.raises(ValueError, match=r'ws must have shape'):
        G.synthesis(np.zeros([2, G.num_ws + 1, 16], np.float32))
    with pytest.raises(ValueError, match='noise_mode'):
        G.synthesis(np.zeros([2, G.num_ws, 16], np.float32), noise_mode='loud')


def test_bad_transform():
    G = _small('stylegan3-t')
    ws = np.zeros([1, G.num_ws, 16], np.float32)
    with pytest.raises(ValueError, match=r'transform must have shape \[3, 3\]'):
        G.synthesis(ws, transform=np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match='transform is only supported'):
        _small('stylegan2').synthesis(np.zeros([1, 8, 16], np.float32), transform=np.eye(3))


def test_bad_discriminator_input():
    D = afgan_tf.Discriminator(img_resolution=16, channel_base=512, channel_max=32)
    with pytest.raises(ValueError, match=r'img must have shape \[N, 16, 16, 3\]'):
        D(np.zeros([2, 3, 16, 16], np.float32))


def test_state_dict_mismatch_is_reported(load_reference_network):
    net = load_reference_network('stylegan3-t_32')
    state = dict(net.G_state)
    state.pop('mapping.fc0.weight')
    with pytest.raises(ValueError, match='missing'):
        nvidia.generator_from_state_dict('stylegan3-t', net.meta['generator_kwargs'], state)
    kwargs = dict(net.meta['generator_kwargs'], z_dim=64)
    with pytest.raises(ValueError, match='shape'):
        nvidia.generator_from_state_dict('stylegan3-t', kwargs, net.G_state)




# Reduced precision against float32 on the shared networks (measured: float16 <= 0.0015,
# bfloat16 <= 0.0102 max abs, images about [-1, 1]; logits <= 0.0008).
PRECISION_TOL = {'float16': 0.004, 'bfloat16': 0.02}


@pytest.mark.parametrize('name', NETWORKS)
def test_reduced_precision_images_are_close_to_float32(load_reference_network, name):
    net = load_reference_network(name)
    ws, real = net.io['ws'], nhwc(net.io['d_input_real'])
    ref, ref_logits = net.G.synthesis(ws).numpy(), net.D(real).numpy()
    try:
        for dtype, tol in PRECISION_TOL.items():
            layers, blocks = net.G.set_precision(dtype), net.D.set_precision(dtype)
            assert layers and blocks == ['b32', 'b16', 'b8']          # num_fp16_res 4 at 32x32.
            img, logits = net.G.synthesis(ws), net.D(real)
            assert img.dtype == tf.float32 and logits.dtype == tf.float32
            err = max_abs(img, ref)
            assert 0 < err < tol, (dtype, err)                        # Reduced (not identical), within tolerance.
            assert max_abs(logits, ref_logits) < tol, dtype
    finally:
        net.G.set_precision('float32')
        net.D.set_precision('float32')
    assert max_abs(net.G.synthesis(ws), ref) == 0
    with pytest.raises(ValueError, match='precision must be'):
        net.G.set_precision('int8')
