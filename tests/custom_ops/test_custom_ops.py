"""The compiled filtered_lrelu op (afgan_tf.custom_ops) against the pure-TF reference path."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import custom_ops, ops
from afgan_tf.custom_ops import cuda_api

from conftest import (
    filtered_lrelu_and_gradients,
    max_abs,
    nhwc,
    rel_err,
    require_custom_op,
)

REQUIRE = os.environ.get('AFGAN_TF_REQUIRE_CUSTOM_OP', '0') == '1'

require_custom_op()


def _both(x, b, dy, **kwargs):
    """(y, dx, db) for impl='ref' and impl='custom'."""
    return tuple(filtered_lrelu_and_gradients(x, b, dy, impl, **kwargs) for impl in ('ref', 'custom'))


def test_reference_cases(reference_filtered_lrelu_cases):
    for case in reference_filtered_lrelu_cases:
        y, dx, db = filtered_lrelu_and_gradients(case['x'], case['b'], case['dy'], 'custom', **case['kwargs'])
        for got, key in ((y, 'y'), (dx, 'dx'), (db, 'db')):
            assert rel_err(got, case[key]) < 1e-5, (key, case['kwargs'])


def _random_case(rng):
    """A random case from custom_ops/cuda_api.py, with ops.filtered_lrelu's argument names."""
    shape, fu, fd, kw = cuda_api.random_case(rng)
    kw['flip_filter'] = kw.pop('flip')
    x = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[-1]).astype(np.float32)
    return x, b, dict(kw, fu=fu, fd=fd)


@pytest.mark.parametrize('seed', range(40))
def test_random_cases_match_reference(seed):
    rng = np.random.default_rng(seed)
    x, b, kwargs = _random_case(rng)
    ref, custom = _both(x, b, None, **kwargs)
    dy_ref, dy_custom = _both(x, b, rng.standard_normal(ref[0].shape).astype(np.float32), **kwargs)
    assert custom[0].shape == ref[0].shape
    assert rel_err(custom[0], ref[0]) < 1e-5, kwargs
    # Gradients with a random upstream gradient; elements right at the clamp or at 0 may
    # legitimately differ only where the two paths round the pre-activation differently.
    assert rel_err(dy_custom[1], dy_ref[1]) < 1e-5, kwargs
    assert rel_err(dy_custom[2], dy_ref[2]) < 1e-5, kwargs


def test_stylegan_layer_shapes():
    """The configurations the generators use: up 2/4, down 2, 12/24 taps, separable and radial fd."""
    rng = np.random.default_rng(0)
    from afgan_tf.filters import design_lowpass_filter
    for up, fu_taps, radial in [(2, 12, False), (4, 24, False), (2, 12, True)]:
        fu = design_lowpass_filter(fu_taps, 4.0, 6.0, 32 * up // 2)
        fd = design_lowpass_filter(12, 4.0, 6.0, 32, radial=radial)
        x = rng.standard_normal([2, 20, 20, 16]).astype(np.float32) * 10
        b = rng.standard_normal([16]).astype(np.float32)
        kwargs = dict(fu=fu, fd=fd, up=up, down=2, padding=[11, 10, 11, 10], clamp=4.0)
        ref, custom = _both(x, b, rng.standard_normal(ops.filtered_lrelu(x, impl='ref', **kwargs).shape).astype(
            np.float32), **kwargs)
        for r, c in zip(ref, custom):
            assert rel_err(c, r) < 1e-5


@pytest.mark.parametrize('name', ['stylegan3-t_32', 'stylegan3-r_32'])
def test_generators_agree_between_impls(load_reference_network, name):
    net = load_reference_network(name)
    ws = net.io['ws']
    ref = net.G.synthesis(ws, impl='ref')
    custom = net.G.synthesis(ws, impl='custom')
    assert max_abs(custom, ref) < 1e-4
    assert max_abs(custom, nhwc(net.io['img'])) < 1e-4


def test_generator_gradients_agree_between_impls(load_reference_network):
    net = load_reference_network('stylegan3-t_32')
    ws = tf.constant(net.io['ws'][:2])
    grads = {}
    for impl in ('ref', 'custom'):
        with tf.GradientTape() as tape:
            tape.watch(ws)
            loss = tf.reduce_sum(tf.square(net.G.synthesis(ws, impl=impl)))
        grads[impl] = tape.gradient(loss, [ws] + net.G.synthesis.trainable_weights)
    assert len(grads['ref']) > 50
    for r, c in zip(grads['ref'], grads['custom']):
        assert r is not None and c is not None
        assert rel_err(c, r) < 1e-4


def test_op_rejects_bad_input_in_kernel():
    """The kernel's own checks (OP_REQUIRES), bypassing the Python wrapper."""
    lib = custom_ops.load_library()
    x = tf.zeros([1, 4, 4, 3])
    args = dict(up=1, down=1, padding=[0, 0, 0, 0], gain=1.0, slope=0.2, clamp=-1.0, flip_filter=False)
    one = tf.ones([1])
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='b must have shape'):
        lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=tf.zeros([2]), **args)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='fu must be'):
        lib.afgan_filtered_lrelu(x=x, fu=tf.ones([1, 1, 1]), fd=one, b=tf.zeros([3]), **args)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='empty output'):
        lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=tf.zeros([3]), **{**args, 'padding': [-4, -4, 0, 0]})
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='padding'):
        lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=tf.zeros([3]), **{**args, 'padding': [0, 0]})
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
        lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=tf.zeros([3]), **{**args, 'up': 0})


def test_wrapper_rejects_bad_input():
    x = np.zeros([1, 4, 4, 3], np.float32)
    with pytest.raises(ValueError, match='b must have shape'):
        ops.filtered_lrelu(x, b=np.zeros(2, np.float32), impl='custom')
    with pytest.raises(ValueError, match='down must be'):
        ops.filtered_lrelu(x, down=0, impl='custom')


def test_works_inside_tf_function_and_batch_one():
    x = tf.constant(np.random.default_rng(3).standard_normal([1, 7, 5, 2]).astype(np.float32))
    f = np.array([1, 3, 3, 1], np.float32) / 8
    fn = tf.function(lambda x: ops.filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl='custom'))
    assert max_abs(fn(x), ops.filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl='ref')) < 1e-5


def test_force_ref_env_and_fallback_warning():
    """AFGAN_TF_FORCE_REF=1 disables the op; a missing library warns once and falls back."""
    code = ('import warnings, numpy as np\n'
            'from afgan_tf import ops\n'
            'x = np.ones([1, 4, 4, 1], np.float32)\n'
            'with warnings.catch_warnings(record=True) as w:\n'
            '    warnings.simplefilter("always")\n'
            '    ops.filtered_lrelu(x); ops.filtered_lrelu(x)\n'
            'print(len([m for m in w if "reference path" in str(m.message)]))\n'
            'try:\n'
            '    ops.filtered_lrelu(x, impl="custom"); print("custom ran")\n'
            'except RuntimeError as e: print("refused")\n')
    env = dict(os.environ, AFGAN_TF_CUSTOM_OP_LIB='/nonexistent/lib.so', TF_CPP_MIN_LOG_LEVEL='3')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ['1', 'refused']
    env = dict(os.environ, AFGAN_TF_FORCE_REF='1', TF_CPP_MIN_LOG_LEVEL='3')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ['0', 'refused']


def test_layers_opt_out_of_xla():
    import afgan_tf
    G = afgan_tf.Generator('stylegan3-t', z_dim=8, w_dim=8, img_resolution=16, channel_base=256, channel_max=16)
    layer = getattr(G.synthesis, G.synthesis.layer_names[0])
    assert layer.supports_jit is False and G.supports_jit is False




_ATTRS = dict(up=1, down=1, padding=[0, 0, 0, 0], gain=2.0, slope=0.25, clamp=3.0, flip_filter=False)


def test_signs_hold_negative_and_clamped_bits():
    """With up 1 and 1-tap filters the intermediate is x + b. Channel c's bits are in word c // 16: bit c % 16 is
    v < 0 (-0 positive, NaN negative), bit 16 + c % 16 is |act(v)| > clamp; 20 channels take two words."""
    lib = custom_ops.load_library()
    rng = np.random.default_rng(5)
    x = (rng.standard_normal([2, 3, 4, 20]) * 3).astype(np.float32)
    x[0, 0, 0, :3] = [-0.0, np.nan, 0.0]
    b = np.full([20], -0.0, np.float32)
    one = tf.ones([1])
    y, signs = lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=b, write_signs=True, **_ATTRS)
    assert signs.dtype == tf.uint8 and signs.shape == [2, 3, 4, 8]
    words = signs.numpy().view('<u4')                                  # [2, 3, 4, 2]
    lane = np.arange(20) % 16
    word = words[..., np.arange(20) // 16]
    codes = ((word >> lane) & 1) | (((word >> (16 + lane)) & 1) << 1)
    v = x + b
    act = np.where(v >= 0, v, v * 0.25) * 2.0
    with np.errstate(invalid='ignore'):
        want = (~(v >= 0)).astype(int) | 2 * (np.abs(act) > 3.0)
    assert want.min() == 0 and want.max() == 3
    assert np.array_equal(codes, want)
    assert codes[0, 0, 0, :3].tolist() == [0, 1, 0]
    assert not (words[..., 1] & ~np.uint32(0x000F000F)).any()         # Bits of channels 20-31: none.
    _, no_signs = lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=b, **_ATTRS)
    assert no_signs.shape == [0]


def test_gradient_reads_the_forward_signs_without_recomputing():
    """Under a tape the forward writes the signs, and the gradient op takes them (and not x): one forward op in the
    traced step."""
    f = np.array([1, 3, 3, 1], np.float32) / 8
    x = tf.constant(np.random.default_rng(4).standard_normal([2, 6, 6, 3]).astype(np.float32))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = ops.filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl='custom')
        return tape.gradient(y, x)

    graph = step.get_concrete_function(x).graph
    forward = [op for op in graph.get_operations() if op.type == 'AfganFilteredLrelu']
    grads = [op for op in graph.get_operations() if op.type == 'AfganFilteredLreluGrad']
    assert len(forward) == 1 and forward[0].get_attr('write_signs') and len(grads) == 1
    assert grads[0].inputs[1] is forward[0].outputs[1]
    ref = filtered_lrelu_and_gradients(x.numpy(), np.zeros(x.shape[-1], np.float32), None, 'ref', fu=f, fd=f, up=2, down=2, padding=3)[1]
    assert rel_err(step(x), ref) < 1e-5


def test_gradient_of_a_function_traced_without_a_tape():
    """A function traced where no tape could record skips the signs; differentiated later, its gradient computes
    them with one more forward and is still right."""
    f = np.array([1, 3, 3, 1], np.float32) / 8
    x = tf.constant(np.random.default_rng(6).standard_normal([1, 5, 7, 4]).astype(np.float32))
    fn = tf.function(lambda x: ops.filtered_lrelu(x, f, f, up=2, down=2, padding=3, clamp=0.5, impl='custom'))
    fn(x)      # Traced outside any tape.
    ops_ = fn.get_concrete_function(x).graph.get_operations()
    assert [op.get_attr('write_signs') for op in ops_ if op.type == 'AfganFilteredLrelu'] == [False]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    dx = tape.gradient(y, x)
    ref = filtered_lrelu_and_gradients(x.numpy(), np.zeros(x.shape[-1], np.float32), None, 'ref', fu=f, fd=f, up=2, down=2, padding=3,
                                       clamp=0.5)[1]
    assert rel_err(dx, ref) < 1e-5


def test_gradient_op_rejects_bad_signs():
    lib = custom_ops.load_library()
    one = tf.ones([1])
    x = tf.ones([1, 4, 4, 3])
    y, signs = lib.afgan_filtered_lrelu(x=x, fu=one, fd=one, b=tf.zeros([3]), write_signs=True, **_ATTRS)
    lib.afgan_filtered_lrelu_grad(dy=y, signs=signs, fu=one, fd=one, **_ATTRS)    # The right ones pass.
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='bytes per position'):
        lib.afgan_filtered_lrelu_grad(dy=y, signs=tf.zeros([1, 4, 4, 8], tf.uint8), fu=one, fd=one, **_ATTRS)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='signs'):
        lib.afgan_filtered_lrelu_grad(dy=y, signs=tf.zeros([0], tf.uint8), fu=one, fd=one, **_ATTRS)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='intermediate of any input'):
        lib.afgan_filtered_lrelu_grad(dy=y, signs=tf.zeros([1, 5, 4, 4], tf.uint8), fu=one, fd=one,
                                      **{**_ATTRS, 'up': 2})
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="output's shape"):
        lib.afgan_filtered_lrelu_grad(dy=tf.ones([1, 3, 4, 3]), signs=signs, fu=one, fd=one, **_ATTRS)


def test_signs_too_large_is_a_clear_error():
    """2 bits per intermediate element over 2^31 - 1 bytes: an error before anything is allocated."""
    lib = custom_ops.load_library()
    fd = tf.ones([64]) / 64
    x = tf.ones([1, 1, 1, 17])                      # Two sign words per position.
    attrs = {**_ATTRS, 'down': 64, 'padding': [12000, 12000, 12000, 12000]}
    with pytest.raises(tf.errors.InvalidArgumentError, match='signs kept for the gradient'):
        lib.afgan_filtered_lrelu(x=x, fu=tf.ones([1]), fd=fd, b=tf.zeros([17]), write_signs=True, **attrs)
