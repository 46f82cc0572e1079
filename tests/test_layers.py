"""afgan_tf.layers: reference names, equalised learning rate, mapping network, modulated convolution."""

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import layers


def test_fully_connected_equalised_learning_rate_and_names():
    fc = layers.FullyConnected(4, 3, lr_multiplier=0.01, bias_init=1.0, seed=0)
    names = layers.reference_variables(fc)
    assert list(names) == ['weight', 'bias']
    x = np.random.default_rng(0).standard_normal([2, 4]).astype(np.float32)
    w, b = fc.weight.numpy(), fc.bias.numpy()
    expected = x @ (w * 0.01 / 2).T + b * 0.01                   # weight_gain = lr / sqrt(in), bias_gain = lr.
    assert np.allclose(fc(x).numpy(), expected, atol=1e-6)
    assert np.allclose(b * 0.01, 1.0)                             # bias_init is the effective bias.
    clone = layers.FullyConnected.from_config(fc.get_config())
    assert np.array_equal(clone.weight.numpy(), w)                # Same seed, same weights.


def test_mapping_network_truncation_towards_w_avg():
    net = layers.MappingNetwork(z_dim=8, c_dim=0, w_dim=8, num_ws=3, num_layers=2, seed=1)
    net.w_avg.assign(np.full([8], 0.5, np.float32))
    z = np.random.default_rng(1).standard_normal([2, 8]).astype(np.float32)
    ws = net(z).numpy()
    assert ws.shape == (2, 3, 8) and np.allclose(ws[:, 0], ws[:, 2])
    half = net(z, truncation_psi=0.5).numpy()
    assert np.allclose(half, 0.5 + (ws - 0.5) * 0.5, atol=1e-6)
    cut = net(z, truncation_psi=0.5, truncation_cutoff=1).numpy()
    assert np.allclose(cut[:, 0], half[:, 0]) and np.allclose(cut[:, 1:], ws[:, 1:])
    assert list(layers.reference_variables(net))[:2] == ['fc0.weight', 'fc0.bias']


def test_modulated_conv2d_demodulates_to_unit_norm():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal([2, 8, 8, 4]).astype(np.float32))
    weight = tf.constant(rng.standard_normal([5, 4, 3, 3]).astype(np.float32))
    styles = tf.constant(rng.uniform(0.5, 2, [2, 4]).astype(np.float32))
    y = layers.modulated_conv2d(x, weight, styles, demodulate=True, padding=1)
    assert y.shape == (2, 8, 8, 5)
    # Scaling the styles of a sample does not change a demodulated output.
    y2 = layers.modulated_conv2d(x, weight, styles * 3, demodulate=True, padding=1)
    assert np.allclose(y.numpy(), y2.numpy(), atol=1e-4)


def test_bad_synthesis_arguments_name_the_argument():
    with pytest.raises(ValueError, match='ws'):
        layers.check_synthesis_args(np.zeros([2, 3, 8], np.float32), 'const', num_ws=4, w_dim=8)
    with pytest.raises(ValueError, match='noise_mode'):
        layers.check_synthesis_args(np.zeros([2, 4, 8], np.float32), 'loud', num_ws=4, w_dim=8)
    with pytest.raises(ValueError, match='power of two'):
        layers.check_resolution(24)
