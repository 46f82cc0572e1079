"""Pure-TF reference ops (upfirdn2d, bias_act, filtered_lrelu) against the reference's outputs and gradients."""

import json

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import ops

from conftest import filtered_lrelu_and_gradients, nhwc, rel_err


def test_filtered_lrelu_forward_and_gradients_match_reference(reference_filtered_lrelu_cases):
    assert len(reference_filtered_lrelu_cases) == 6
    for case in reference_filtered_lrelu_cases:
        y, dx, db = filtered_lrelu_and_gradients(case['x'], case['b'], case['dy'], 'ref', **case['kwargs'])
        assert y.shape == case['y'].shape
        for got, key in ((y, 'y'), (dx, 'dx'), (db, 'db')):
            assert rel_err(got, case[key]) < 1e-5, (key, case['kwargs'])


def test_upfirdn2d_matches_reference(reference_dir):
    data = np.load(reference_dir / 'ops.npz')
    cases = [c for c in json.loads((reference_dir / 'ops.json').read_text()) if 'upfirdn_case' in c]
    assert len(cases) == 4
    for c in cases:
        p = f"upfirdn{c['upfirdn_case']}_"
        y = ops.upfirdn2d(nhwc(data[p + 'x']), data[p + 'f'], up=c['up'], down=c['down'], padding=c['padding'],
                          flip_filter=c['flip_filter'], gain=c['gain'])
        assert y.shape == nhwc(data[p + 'y']).shape
        assert rel_err(y, nhwc(data[p + 'y'])) < 1e-5, c


def test_upfirdn2d_separable_equals_outer_product_and_flip():
    rng = np.random.default_rng(0)
    x = rng.standard_normal([2, 7, 9, 3]).astype(np.float32)
    f = rng.standard_normal(5).astype(np.float32)
    for flip in (False, True):
        a = ops.upfirdn2d(x, f, up=2, down=1, padding=[2, 1, 3, 0], flip_filter=flip)
        b = ops.upfirdn2d(x, np.outer(f, f), up=2, down=1, padding=[2, 1, 3, 0], flip_filter=flip)
        assert np.allclose(a, b, atol=1e-5)
    # An asymmetric filter gives different results for convolution and correlation.
    assert not np.allclose(ops.upfirdn2d(x, f, padding=2), ops.upfirdn2d(x, f, padding=2, flip_filter=True))


def test_filtered_lrelu_compiles_with_xla():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal([2, 10, 10, 4]).astype(np.float32))
    b = tf.constant(rng.standard_normal(4).astype(np.float32))
    fu = rng.standard_normal(12).astype(np.float32)
    fd = rng.standard_normal([12, 12]).astype(np.float32)
    kwargs = dict(up=2, down=2, padding=[9, 8, 9, 8], clamp=2.0, impl='ref')
    eager = ops.filtered_lrelu(x, fu, fd, b, **kwargs)
    xla = tf.function(lambda x, b: ops.filtered_lrelu(x, fu, fd, b, **kwargs), jit_compile=True)(x, b)
    assert eager.shape == (2, 8, 8, 4)
    assert np.allclose(eager, xla, atol=1e-4)


def test_bias_act_gain_clamp_and_slope():
    x = tf.constant([[-2.0, -0.5, 0.5, 3.0]])
    y = ops.bias_act(x, b=[0.0, 0.0, 0.0, 1.0], act='lrelu', alpha=0.5, gain=2.0, clamp=5.0)
    assert np.allclose(y, [[-2.0, -0.5, 1.0, 5.0]])
    assert np.allclose(ops.leaky_relu(x, 2.0), [[-4.0, -1.0, 0.5, 3.0]])   # slope > 1 is handled exactly


def test_bias_act_second_order_gradients_connect_as_pytorchs():
    """R1 differentiates dD/dx: PyTorch gives a bias in front of a leaky ReLU a zero gradient (its
    leaky_relu_backward keeps x in the graph), and a bias in front of a clamp only none. NVIDIA's Adam
    then steps the first (moments decay) and skips the second; a None for the first was a deviation."""
    x = tf.constant([[0.5, -1.0], [0.0, 2.0]])
    b = tf.Variable([0.1, -0.2])

    def outer_gradient(**kwargs):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                total = tf.reduce_sum(ops.bias_act(x, b, **kwargs) * tf.constant([[1.0, 2.0], [3.0, 4.0]]))
            penalty = tf.reduce_sum(tf.square(inner.gradient(total, x)))
        return outer.gradient(penalty, b), inner
    grad, _ = outer_gradient(act='lrelu')
    assert grad is not None and np.array_equal(grad.numpy(), [0.0, 0.0])
    grad, _ = outer_gradient(act='linear', clamp=256)
    assert grad is None
    zero = tf.constant([0.0])
    with tf.GradientTape() as tape:                 # PyTorch: the slope at exactly 0.
        tape.watch(zero)
        y = ops.bias_act(zero, act='lrelu', gain=1)
    assert float(tape.gradient(y, zero)[0]) == pytest.approx(0.2)


@pytest.mark.parametrize('kwargs, match', [
    (dict(b=np.zeros(5, np.float32)), 'b must have shape'),
    (dict(fu=np.zeros([2, 2, 2], np.float32)), 'fu must be'),
    (dict(fd=np.zeros([3, 3, 3], np.float32)), 'fd must be'),
    (dict(up=0), 'up must be'),
    (dict(down=0), 'down must be'),
    (dict(padding=[-10, -10, 0, 0]), 'empty output'),
    (dict(padding=[1, 2, 3]), 'padding'),
    (dict(gain=0.0), 'gain'),
    (dict(slope=-1.0), 'slope'),
    (dict(clamp=-1.0), 'clamp'),
    (dict(impl='cuda'), 'impl'),
])
def test_filtered_lrelu_bad_arguments(kwargs, match):
    x = np.zeros([1, 8, 8, 4], np.float32)
    with pytest.raises(ValueError, match=match):
        ops.filtered_lrelu(x, **{'impl': 'ref', **kwargs})


def test_filtered_lrelu_rejects_non_nhwc():
    with pytest.raises(ValueError, match='x must be a 4-D NHWC'):
        ops.filtered_lrelu(np.zeros([8, 8, 4], np.float32), impl='ref')


@pytest.mark.parametrize('kwargs', [dict(fu=np.ones([3, 3]), fd=np.ones([3, 3]), up=1, down=2, padding=[2, 1, 2, 2]),
                                    dict(fd=np.ones([4, 4]), up=2, down=1, padding=[3, -1, 3, 3], clamp=1.1),
                                    dict(fu=np.ones(4), fd=np.ones(2), up=2, down=2, padding=1)])
def test_empty_batch_has_the_output_shape(kwargs):
    """An empty batch gives [0, out_h, out_w, C] (TensorFlow's depthwise convolution returns an empty input
    unchanged; found by the fuzz test)."""
    kwargs = {k: np.asarray(v, np.float32) if k in ('fu', 'fd') else v for k, v in kwargs.items()}
    one = ops.filtered_lrelu(np.ones([1, 3, 3, 2], np.float32), impl='ref', **kwargs)
    empty = ops.filtered_lrelu(np.ones([0, 3, 3, 2], np.float32), impl='ref', **kwargs)
    assert empty.shape == (0, *one.shape[1:])
    f = kwargs.get('fd')
    assert ops.upfirdn2d(np.ones([0, 5, 5, 2], np.float32), f, down=2).shape == \
        (0, *ops.upfirdn2d(np.ones([1, 5, 5, 2], np.float32), f, down=2).shape[1:])
