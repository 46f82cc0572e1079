"""ctypes binding of the CUDA kernels' C entry points (filtered_lrelu_cuda.h).

Needs neither TensorFlow nor PyTorch: pointers are plain integers (device pointers
for the real CUDA library, host pointers for the CPU emulation build), so the GPU
check script and the emulation tests share it. Load it by file path where the
``afgan_tf`` package (which imports TensorFlow) is not wanted.
"""

import ctypes

import numpy as np

CUDA_ERROR = -6    # AFGAN_FLRELU_CUDA_ERROR in filtered_lrelu.h.

_INT_FIELDS_1 = ('n', 'h', 'w', 'c', 'up', 'down', 'px0', 'px1', 'py0', 'py1')
_INT_FIELDS_2 = ('flip_filter', 'fu_w', 'fu_h', 'fu_2d', 'fd_w', 'fd_h', 'fd_2d')


class Params(ctypes.Structure):
    """Mirror of ``AfganFlreluParams``."""
    _fields_ = ([(name, ctypes.c_int) for name in _INT_FIELDS_1]
                + [('gain', ctypes.c_float), ('slope', ctypes.c_float), ('clamp', ctypes.c_float)]
                + [(name, ctypes.c_int) for name in _INT_FIELDS_2])


def prepare(shape, fu, fd, up=1, down=1, padding=(0, 0, 0, 0), gain=np.sqrt(2), slope=0.2, clamp=None,
            flip=False):
    """Returns ``(params, fu, fd)`` with identity filters as ``[1]`` and C-contiguous float32 taps."""
    if len(shape) != 4:
        raise ValueError(f'shape must be [n, h, w, c], got {list(shape)}')
    if len(padding) != 4:
        raise ValueError(f'padding must be [x0, x1, y0, y1], got {list(padding)}')
    n, h, w, c = shape
    fu = np.ones([1], np.float32) if fu is None else np.ascontiguousarray(fu, np.float32)
    fd = np.ones([1], np.float32) if fd is None else np.ascontiguousarray(fd, np.float32)
    ints = dict(n=n, h=h, w=w, c=c, up=up, down=down, px0=padding[0], px1=padding[1], py0=padding[2],
                py1=padding[3])
    for name, value in ints.items():     # ctypes would wrap larger values silently.
        if not -2 ** 31 <= int(value) < 2 ** 31:
            raise ValueError(f'{name} must fit a 32-bit int, got {value}')
    params = Params(*[int(v) for v in ints.values()], float(gain), float(slope),
                    -1.0 if clamp is None else float(clamp), int(flip), fu.shape[-1], fu.shape[0],
                    int(fu.ndim == 2), fd.shape[-1], fd.shape[0], int(fd.ndim == 2))
    return params, fu, fd


class CudaKernels:
    """The entry points of a libafgan_flrelu_cuda.so (or its CPU emulation build)."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path))
        ptr, fptr = ctypes.c_void_p, ctypes.POINTER(ctypes.c_float)
        self.lib.afgan_flrelu_cuda_forward.argtypes = [ctypes.POINTER(Params), ptr, ptr, fptr, fptr, ptr, ptr, ptr]
        self.lib.afgan_flrelu_cuda_backward.argtypes = [ctypes.POINTER(Params), ptr, ptr, fptr, fptr, ptr, ptr]
        self.lib.afgan_flrelu_cuda_last_error.restype = ctypes.c_char_p
        for name in ('afgan_flrelu_output_shape', 'afgan_flrelu_signs_shape'):
            getattr(self.lib, name).argtypes = [ctypes.POINTER(Params), ctypes.POINTER(ctypes.c_int64)]

    def _check(self, code):
        """Raises RuntimeError for a CUDA failure (-6), ValueError for rejected arguments."""
        if code != 0:
            error = RuntimeError if code == CUDA_ERROR else ValueError
            raise error(f'filtered_lrelu kernel returned {code}: {self.lib.afgan_flrelu_cuda_last_error().decode()}')

    def output_shape(self, params):
        """``[n, out_h, out_w, c]`` from the library (which checks the parameters first)."""
        shape = (ctypes.c_int64 * 4)()
        self._check(self.lib.afgan_flrelu_output_shape(ctypes.byref(params), shape))
        return list(shape)

    def signs_shape(self, params):
        """``[n, tmp_h, tmp_w, bytes]``: the uint8 signs the forward writes for the gradient."""
        shape = (ctypes.c_int64 * 4)()
        self._check(self.lib.afgan_flrelu_signs_shape(ctypes.byref(params), shape))
        return list(shape)

    @staticmethod
    def _taps(f):
        return f.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def forward(self, params, x_ptr, b_ptr, fu, fd, y_ptr, signs_ptr=None, stream=0):
        """y from x and b; with ``signs_ptr`` (``signs_shape`` bytes), also the signs for ``backward``."""
        self._check(self.lib.afgan_flrelu_cuda_forward(ctypes.byref(params), x_ptr, b_ptr, self._taps(fu),
                                                       self._taps(fd), y_ptr, signs_ptr, ctypes.c_void_p(stream)))

    def backward(self, params, dy_ptr, signs_ptr, fu, fd, dx_ptr, stream=0):
        """dx from dy and the signs of the forward."""
        self._check(self.lib.afgan_flrelu_cuda_backward(ctypes.byref(params), dy_ptr, signs_ptr, self._taps(fu),
                                                        self._taps(fd), dx_ptr, ctypes.c_void_p(stream)))


def random_case(rng, max_size=10, max_channels=6, max_batch=3):
    """A random filtered_lrelu test case: ``(shape, fu, fd, kwargs)``.

    Covers up 1/2/4, down 1/2, missing / separable / 2-D filters of random length,
    negative and positive padding (always leaving an output), clamp or none, slopes
    0 / 0.2 / 1, and flip_filter. kwargs use this module's names (``flip``).
    """
    up, down = int(rng.choice([1, 2, 4])), int(rng.choice([1, 2]))

    def filt(factor):
        kind = rng.choice(['none', 'sep', '2d'])
        if kind == 'none':
            return None
        taps = int(rng.integers(1, 4)) * factor + int(rng.integers(0, 2))
        return rng.standard_normal([taps] if kind == 'sep' else [taps, taps]).astype(np.float32)

    fu, fd = filt(up), filt(down)
    h, w = int(rng.integers(1, max_size)), int(rng.integers(1, max_size))
    need = (1 if fu is None else fu.shape[-1]) + (1 if fd is None else fd.shape[-1]) - 2
    pad = [int(rng.integers(-2, 5)) for _ in range(4)]
    pad[0] += max(0, need - (w * up + pad[0] + pad[1]) + 1)
    pad[2] += max(0, need - (h * up + pad[2] + pad[3]) + 1)
    kwargs = dict(up=up, down=down, padding=pad, gain=float(rng.uniform(0.5, 2)),
                  slope=float(rng.choice([0.0, 0.2, 1.0])),
                  clamp=None if rng.random() < 0.4 else float(rng.uniform(0.5, 3)), flip=bool(rng.random() < 0.3))
    shape = [int(rng.integers(1, max_batch + 1)), h, w, int(rng.integers(1, max_channels + 1))]
    return shape, fu, fd, kwargs
