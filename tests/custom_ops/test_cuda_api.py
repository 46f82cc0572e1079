"""The CUDA kernels' logic through their C entry points (cuda_api.py), run on the CPU by the emulation build.

The same source file (filtered_lrelu_kernels.cu.cc) is what nvcc compiles; here g++ compiles it with
cuda_emulation.h, where each thread block runs as real threads meeting at a barrier."""

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import ops

from conftest import rel_err


def _run(emulated, x, b, dy, fu, fd, **kw):
    api, kernels = emulated
    p, fu_c, fd_c = api.prepare(list(x.shape), fu, fd, **kw)
    y = np.full(kernels.output_shape(p), np.nan, np.float32)
    signs = np.full(kernels.signs_shape(p), 0xAB, np.uint8)    # Garbage: the forward must clear it.
    kernels.forward(p, x.ctypes.data, b.ctypes.data, fu_c, fd_c, y.ctypes.data, signs.ctypes.data)
    y_only = np.full(y.shape, np.nan, np.float32)
    kernels.forward(p, x.ctypes.data, b.ctypes.data, fu_c, fd_c, y_only.ctypes.data)    # Without signs.
    assert np.array_equal(y, y_only)
    dx = np.full(x.shape, np.nan, np.float32)
    kernels.backward(p, dy.ctypes.data, signs.ctypes.data, fu_c, fd_c, dx.ctypes.data)
    return y, dx


def _reference(x, b, dy, fu, fd, up, down, padding, gain, slope, clamp, flip):
    xv = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xv)
        y = ops.filtered_lrelu(xv, fu, fd, b, up=up, down=down, padding=padding, gain=gain, slope=slope,
                               clamp=clamp, flip_filter=flip, impl='ref')
    return y.numpy(), tape.gradient(y, xv, output_gradients=tf.constant(dy)).numpy()



@pytest.mark.parametrize('seed', range(24))
def test_emulated_cuda_kernels_match_reference(emulated, seed):
    rng = np.random.default_rng(100 + seed)
    api, kernels = emulated
    shape, fu, fd, kw = api.random_case(rng, max_size=22, max_channels=10, max_batch=2)   # Several tiles, 2 groups.
    x = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[-1]).astype(np.float32)
    p, _, _ = api.prepare(shape, fu, fd, **kw)
    dy = rng.standard_normal(kernels.output_shape(p)).astype(np.float32)
    y_ref, dx_ref = _reference(x, b, dy, fu, fd, **kw)
    y, dx = _run(emulated, x, b, dy, fu, fd, **kw)
    assert y.shape == y_ref.shape
    assert not np.isnan(y).any() and not np.isnan(dx).any()
    assert rel_err(y, y_ref) < 1e-5, (shape, kw)
    assert rel_err(dx, dx_ref) < 1e-5, (shape, kw)


def test_emulated_cuda_stylegan_layer(emulated):
    """A StyleGAN3-R-like layer: up 2, 12-tap sinc up filter, 12x12 radial down filter, clamp."""
    from afgan_tf.filters import design_lowpass_filter
    rng = np.random.default_rng(7)
    fu = design_lowpass_filter(12, 4.0, 6.0, 32)
    fd = design_lowpass_filter(12, 4.0, 6.0, 32, radial=True)
    kw = dict(up=2, down=2, padding=[11, 10, 11, 10], gain=float(np.sqrt(2)), slope=0.2, clamp=4.0, flip=False)
    x = (rng.standard_normal([1, 18, 18, 9]) * 5).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    dy = rng.standard_normal([1, 18, 18, 9]).astype(np.float32)
    y_ref, dx_ref = _reference(x, b, dy, fu, fd, **kw)
    y, dx = _run(emulated, x, b, dy, fu, fd, **kw)
    assert rel_err(y, y_ref) < 1e-5 and rel_err(dx, dx_ref) < 1e-5


def test_emulated_cuda_reports_bad_arguments(emulated):
    api, kernels = emulated
    p, fu, fd = api.prepare([1, 4, 4, 2], None, None, padding=[-5, -5, 0, 0])
    x = np.zeros([1, 4, 4, 2], np.float32)
    with pytest.raises(ValueError, match='empty output'):
        kernels.forward(p, x.ctypes.data, x.ctypes.data, fu, fd, x.ctypes.data)
