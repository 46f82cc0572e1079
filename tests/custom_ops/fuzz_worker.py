"""Worker of tests/test_op_fuzz.py: runs filtered_lrelu cases and reports how each ended.

Reads one JSON case per line on stdin. Before a case it prints ``start <i>``, after it
``done <i> <json>`` with ``status``: ``ok`` (output equal to the reference path), ``error``
(a clean exception, its type and message in ``detail``), ``large`` (accepted, but its
output is too large to run here), or ``bad`` (anything a user must never see: a wrong
output, an unexpected exception type, or a check that accepts what the other rejects).
A signal death shows as a ``start`` without its ``done``.

A case names a target: ``wrapper`` (``afgan_tf.ops.filtered_lrelu``, impl 'custom'),
``raw_op`` (the compiled TensorFlow ops called directly, bypassing the Python checks)
or ``emulated`` (the CUDA kernels' C entry points, through the CPU emulation build
whose path is the first argument).
"""

import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from afgan_tf import custom_ops, ops  # noqa: E402
from afgan_tf.custom_ops import build, cuda_api  # noqa: E402

RUN_LIMIT = 1 << 20      # Outputs larger than this (elements) are accepted but not run here.
CLEAN_ERRORS = (ValueError, TypeError, OverflowError, tf.errors.InvalidArgumentError)


def _filter(spec, rng):
    return None if spec is None else rng.standard_normal(spec).astype(np.float32)


def _reference(x, b, dy, kw):
    """(y, dx) of the pure-TF path, or the ValueError it raises."""
    xv = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xv)
        y = ops.filtered_lrelu(xv, b=tf.constant(b), impl='ref', **kw)
    if dy is None:
        dy = np.ones(y.shape, np.float32)
    return y.numpy(), tape.gradient(y, xv, output_gradients=tf.constant(dy)).numpy()


def _expected_elements(shape, kw):
    """Output elements by the Python formula (plain ints, no limits), or 0 if empty."""
    n, h, w, c = shape
    fu, fd = kw['fu'], kw['fd']
    fw, fh = ops.filter_size(fu)
    dw, dh = ops.filter_size(fd)
    pad = list(kw['padding']) if isinstance(kw['padding'], list) and len(kw['padding']) == 4 else [0] * 4
    try:
        ow = ops.filtered_lrelu_output_size(w, fw, dw, kw['up'], kw['down'], pad[0], pad[1])
        oh = ops.filtered_lrelu_output_size(h, fh, dh, kw['up'], kw['down'], pad[2], pad[3])
    except (TypeError, ZeroDivisionError):
        return 0
    return max(ow, 0) * max(oh, 0) * n * c


def _close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and float(np.max(np.abs(a - b), initial=0)) <= 1e-4 * max(1.0, float(
        np.max(np.abs(b), initial=0)))


def _as_received(kw):
    """The arguments as the compiled code saw them: ints converted by TensorFlow / ctypes,
    [x, y] padding expanded, a negative clamp meaning none."""
    padding = kw['padding']
    padding = [padding] * 4 if not isinstance(padding, list) else padding * 2 if len(padding) == 1 else \
        [padding[0], padding[0], padding[1], padding[1]] if len(padding) == 2 else padding
    clamp = kw['clamp']
    return dict(kw, up=int(kw['up']), down=int(kw['down']), padding=[int(p) for p in padding],
                clamp=None if clamp is None or clamp < 0 else clamp)


def _compare(out, x, b, kw, dy=None):
    try:
        ref = _reference(x, b, dy, kw)
    except ValueError as e:
        return 'bad', f'the compiled code accepted what the Python checks reject: {e}'
    for name, got, want in zip(('y', 'dx'), out, ref):
        if not _close(got, want):
            return 'bad', f'{name} differs from the reference path (shape {np.shape(got)} vs {np.shape(want)})'
    return 'ok', ''


def _within_limits(x, b, kw):
    """True when the arguments, as the compiled code would receive them, pass the Python checks."""
    try:
        kw = _as_received(kw)
        ops.check_filtered_lrelu_args(x, kw['fu'], kw['fd'], b, kw['up'], kw['down'], kw['padding'], kw['gain'],
                                      kw['slope'], kw['clamp'])
    except (ValueError, TypeError):
        return False
    return True


def run_wrapper(x, b, kw):
    xv = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xv)
        y = ops.filtered_lrelu(xv, b=tf.constant(b), impl='custom', **kw)
    dx = tape.gradient(y, xv, output_gradients=tf.ones_like(y))
    return _compare((y.numpy(), dx.numpy()), x, b, kw)


def run_raw_op(x, b, kw):
    lib = custom_ops.load_library()
    one = np.ones([1], np.float32)
    attrs = dict(up=kw['up'], down=kw['down'], padding=kw['padding'], gain=kw['gain'], slope=kw['slope'],
                 clamp=-1.0 if kw['clamp'] is None else kw['clamp'], flip_filter=kw['flip_filter'])
    fu = one if kw['fu'] is None else kw['fu']
    fd = one if kw['fd'] is None else kw['fd']
    y, signs = lib.afgan_filtered_lrelu(x=x, fu=fu, fd=fd, b=b, write_signs=True, **attrs)
    dy = np.ones(y.shape, np.float32)
    dx = lib.afgan_filtered_lrelu_grad(dy=dy, signs=signs, fu=fu, fd=fd, **attrs)
    return _compare((y.numpy(), dx.numpy()), x, b, _as_received(kw), dy)


_kernels = None


def run_emulated(x, b, kw):
    global _kernels
    if _kernels is None:
        _kernels = cuda_api.CudaKernels(sys.argv[1] if len(sys.argv) > 1 else build.HERE / build.EMULATED_CUDA_NAME)
    kw = _as_received(kw)
    p, fu, fd = cuda_api.prepare(list(x.shape), kw['fu'], kw['fd'], up=kw['up'], down=kw['down'],
                                 padding=kw['padding'], gain=kw['gain'], slope=kw['slope'], clamp=kw['clamp'],
                                 flip=kw['flip_filter'])
    shape, signs_shape = _kernels.output_shape(p), _kernels.signs_shape(p)
    if int(np.prod(shape)) > RUN_LIMIT or int(np.prod(signs_shape)) > 4 * RUN_LIMIT:
        return 'large', str(shape)
    y = np.full(shape, np.nan, np.float32)
    signs = np.full(signs_shape, 0xFF, np.uint8)
    _kernels.forward(p, x.ctypes.data, b.ctypes.data, fu, fd, y.ctypes.data, signs.ctypes.data)
    dy = np.ones(shape, np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    _kernels.backward(p, dy.ctypes.data, signs.ctypes.data, fu, fd, dx.ctypes.data)
    return _compare((y, dx), x, b, kw, dy)


TARGETS = {'wrapper': run_wrapper, 'raw_op': run_raw_op, 'emulated': run_emulated}


def run_case(case):
    rng = np.random.default_rng(case['seed'])
    x = rng.standard_normal(case['shape']).astype(np.float32)
    b = rng.standard_normal(case['shape'][-1]).astype(np.float32)
    kw = dict(case['kwargs'], fu=_filter(case['fu'], rng), fd=_filter(case['fd'], rng))
    if _expected_elements(case['shape'], kw) > RUN_LIMIT and _within_limits(x, b, kw):
        # A legitimate, huge computation: every check accepts it, so it is not run here.
        return 'large', 'accepted by the checks'
    try:
        return TARGETS[case['target']](x, b, kw)
    except CLEAN_ERRORS as e:
        return 'error', f'{type(e).__name__}: {str(e).splitlines()[0][:300]}'
    except Exception as e:  # noqa: BLE001 - reported to the test as a failure.
        return 'bad', f'unexpected {type(e).__name__}: {str(e)[:300]}'


def main():
    if not custom_ops.is_available():
        sys.exit(f'custom op not built: {custom_ops.load_error()}')
    for line in sys.stdin:
        case = json.loads(line)
        print(f'start {case["index"]}', flush=True)
        status, detail = run_case(case)
        print(f'done {case["index"]} {json.dumps({"status": status, "detail": detail})}', flush=True)


if __name__ == '__main__':
    main()
