"""Fused filtered leaky ReLU as a compiled TensorFlow custom op (``afgan_tf.custom_ops``).

Layout follows TensorFlow's custom-op template:

* ``cc/ops/filtered_lrelu_ops.cc``: op registration and shape functions of
  ``AfganFilteredLrelu`` and its backward op ``AfganFilteredLreluGrad``;
* ``cc/kernels/filtered_lrelu_kernels.cc``: the TensorFlow kernels (CPU and GPU);
* ``cc/kernels/filtered_lrelu_cpu.cc``: fused C++ CPU loops without TensorFlow, one
  copy per instruction set (AVX-512, AVX2, baseline) chosen at run time;
* ``cc/kernels/filtered_lrelu_kernels.cu.cc``: fused CUDA kernels, also callable
  without TensorFlow through the C entry points in ``filtered_lrelu_cuda.h``;
* this module: loads the library, registers the gradient, and wraps the op with the
  same signature and argument checks as ``afgan_tf.ops.filtered_lrelu``.

Build with ``python -m afgan_tf.custom_ops.build``. When the library is missing,
``afgan_tf.ops.filtered_lrelu(impl='auto')`` falls back to the pure-TF path with one
warning that says why (not built, or the reason a ``build --optional`` recorded) and
how to build it; ``AFGAN_TF_FORCE_REF=1`` forces that path everywhere.
"""

import os
import pathlib

import numpy as np
import tensorflow as tf

from afgan_tf.custom_ops.build import FAILURE_NAME, LIBRARY_NAME, cache_dir

LIBRARY_ENV = 'AFGAN_TF_CUSTOM_OP_LIB'     # Optional explicit path of the built library.
PACKAGE_DIR = pathlib.Path(__file__).resolve().parent

_library = None
_load_error = None


def library_path():
    """Where the library is: ``$AFGAN_TF_CUSTOM_OP_LIB``, else next to this file, else the user cache
    (where the build writes when this package's folder is read-only)."""
    if os.environ.get(LIBRARY_ENV):
        return pathlib.Path(os.environ[LIBRARY_ENV])
    for folder in (PACKAGE_DIR, cache_dir()):
        if (folder / LIBRARY_NAME).is_file():
            return folder / LIBRARY_NAME
    return PACKAGE_DIR / LIBRARY_NAME


def _recorded_build_failure():
    """The reason the last ``build --optional`` recorded, or None."""
    for folder in (PACKAGE_DIR, cache_dir()):
        try:
            return (folder / FAILURE_NAME).read_text().strip().splitlines()[0]
        except (OSError, IndexError):
            continue
    return None


def load_library():
    """Loads the op library once; returns it, or None (see ``load_error()``)."""
    global _library, _load_error
    if _library is None and _load_error is None:
        path = library_path()
        if not path.is_file():
            failure = None if os.environ.get(LIBRARY_ENV) else _recorded_build_failure()
            _load_error = f'the build failed: {failure}' if failure else f'{path} not found (not built)'
        else:
            try:
                _library = tf.load_op_library(str(path))
            except (tf.errors.NotFoundError, OSError) as e:
                _load_error = f'{path} failed to load: {e}'
    return _library


def load_error():
    """Why the library is not loaded (None when it is)."""
    load_library()
    return _load_error


def cpu_isa():
    """The instruction set the loaded library's CPU kernels use ('avx512', 'avx2', 'baseline'), or None."""
    if load_library() is None:
        return None
    import ctypes
    lib = ctypes.CDLL(str(library_path()))
    lib.afgan_flrelu_cpu_isa.restype = ctypes.c_char_p
    return lib.afgan_flrelu_cpu_isa().decode()


def is_available():
    """True when the compiled op library is loaded."""
    return load_library() is not None


def _filter_tensor(f):
    """Filter as a float32 constant; identity (None) becomes the 1-tap filter [1]."""
    return tf.constant(np.ones([1], np.float32) if f is None else np.asarray(f, np.float32))


def _gradient_possible():
    """Whether a gradient tape could record an op built now (eagerly, or while a function is traced): then the
    forward writes the signs its gradient needs. Where this says no and a gradient is taken anyway (a function
    traced outside every tape and differentiated later), the gradient computes the signs with one more forward."""
    try:
        from tensorflow.python.eager import record
        return bool(record.could_possibly_record())
    except (ImportError, AttributeError):     # Private API: without it, always write them.
        return True


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None,
                   flip_filter=False, write_signs=None):
    """The fused op; same arguments and result as ``afgan_tf.ops.filtered_lrelu``. ``write_signs``: whether the
    forward writes the 2-bit signs of its intermediate for the gradient (None: when a gradient tape could record
    it; inference skips them)."""
    from afgan_tf import ops    # Imported here: afgan_tf.ops imports this module lazily too.
    lib = load_library()
    if lib is None:
        raise RuntimeError(f'filtered_lrelu custom op library is not loaded: {_load_error}')
    x, fu, fd, padding = ops.check_filtered_lrelu_args(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    in_dtype = x.dtype
    x = tf.cast(x, tf.float32)
    b = tf.zeros([x.shape[-1]], tf.float32) if b is None else tf.cast(b, tf.float32)
    y, _ = lib.afgan_filtered_lrelu(
        x=x, fu=_filter_tensor(fu), fd=_filter_tensor(fd), b=b, up=int(up), down=int(down),
        padding=list(padding), gain=float(gain), slope=float(slope),
        clamp=-1.0 if clamp is None else float(clamp), flip_filter=bool(flip_filter),
        write_signs=_gradient_possible() if write_signs is None else bool(write_signs))
    return tf.cast(y, in_dtype)


GRAD_ATTRS = ('up', 'down', 'padding', 'gain', 'slope', 'clamp', 'flip_filter')


def _register_gradient():
    @tf.RegisterGradient('AfganFilteredLrelu')
    def _filtered_lrelu_grad(op, dy, _dsigns):
        attrs = {name: op.get_attr(name) for name in GRAD_ATTRS}
        x, fu, fd, b = op.inputs
        signs = op.outputs[1]
        if not op.get_attr('write_signs'):     # Built where no tape could record it: the signs, once more.
            _, signs = load_library().afgan_filtered_lrelu(x=x, fu=fu, fd=fd, b=b, write_signs=True, **attrs)
        dx = load_library().afgan_filtered_lrelu_grad(dy=dy, signs=signs, fu=fu, fd=fd, **attrs)
        db = tf.reduce_sum(dx, axis=[0, 1, 2])
        return [dx, None, None, db]


try:
    _register_gradient()
except KeyError:     # Registered already (module reloaded).
    pass
