"""Pure-TensorFlow image ops of the generator and discriminator (NHWC).

These are the reference path: stock TensorFlow ops only, differentiable with
``tf.GradientTape``, XLA-compilable, and what exported SavedModels use. The fused
custom op in ``afgan_tf.custom_ops`` is tested against them.

Conventions follow NVIDIA's reference code, translated from NCHW to NHWC:
``padding`` is ``[x0, x1, y0, y1]`` (or one int, or ``[x, y]``) with respect to the
upsampled image, negative values crop, and ``flip_filter=False`` means true
convolution (the filter is flipped before correlating).
"""

import os
import warnings

import numpy as np
import tensorflow as tf

FORCE_REF_ENV = 'AFGAN_TF_FORCE_REF'   # Set to 1 to never use the custom op.
IMPLS = ('auto', 'ref', 'custom')


# ----------------------------------------------------------------------------
# Argument parsing.

def _as_int_pair(value, name):
    if isinstance(value, (int, np.integer)):
        value = [value, value]
    value = list(value)
    if len(value) != 2 or not all(isinstance(v, (int, np.integer)) for v in value):
        raise ValueError(f'{name} must be an int or a pair of ints, got {value!r}')
    if min(value) < 1:
        raise ValueError(f'{name} must be >= 1, got {value!r}')
    return int(value[0]), int(value[1])


def parse_padding(padding):
    """Returns ``(x0, x1, y0, y1)`` from an int, ``[x, y]`` or ``[x0, x1, y0, y1]``."""
    if isinstance(padding, (int, np.integer)):
        padding = [padding, padding]
    padding = list(padding)
    if not all(isinstance(p, (int, np.integer)) for p in padding) or len(padding) not in (2, 4):
        raise ValueError(f'padding must be an int, [x, y] or [x0, x1, y0, y1] of ints, got {padding!r}')
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    return tuple(int(p) for p in padding)


def _filter_array(f, name='f'):
    """Returns the filter as float32 numpy (rank 1 or 2), or None for identity."""
    if f is None:
        return None
    if isinstance(f, tf.Tensor) and not hasattr(f, 'numpy'):
        raise ValueError(f'{name} must be a constant (numpy array or eager tensor)')
    f = np.asarray(f, dtype=np.float32)
    if f.ndim not in (1, 2) or f.size == 0:
        raise ValueError(f'{name} must be a 1-D [taps] or 2-D [height, width] filter, got shape {f.shape}')
    return f


def filter_size(f):
    """Returns ``(width, height)`` of a filter (1, 1 for None)."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def _check_image(x, name='x'):
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise ValueError(f'{name} must be a 4-D NHWC tensor [batch, height, width, channels], got shape {x.shape}')
    if None in x.shape[1:]:
        raise ValueError(f'{name} must have static height, width and channels, got shape {x.shape}')
    return x


# ----------------------------------------------------------------------------
# upfirdn2d.

def _depthwise(x, taps, strides):
    """Correlates every channel of ``x`` with the 2-D ``taps`` ([kh, kw]), keeping every ``strides``-th output.

    TensorFlow's portable depthwise kernel accepts only equal strides (unequal ones work only
    where oneDNN rewrites the op, which TensorFlow does on some CPUs only). A one-row filter
    with a column stride therefore runs on ``[N * H, 1, W, C]`` and a one-column filter with a
    row stride on ``[N, H, 1, W * C]`` (free reshapes): the other axis has length 1, so both
    strides can be the same.
    """
    _, height, width, channels = x.shape
    (kh, kw), (sy, sx) = taps.shape, strides

    def conv(v, depth, stride):
        kernel = tf.tile(tf.constant(taps, dtype=v.dtype)[:, :, None, None], [1, 1, depth, 1])
        y = tf.nn.depthwise_conv2d(v, kernel, strides=[1, stride, stride, 1], padding='VALID')
        # TensorFlow returns an empty batch with the input's height and width: the output's (a no-op otherwise).
        return tf.reshape(y, [-1, (v.shape[1] - kh) // stride + 1, (v.shape[2] - kw) // stride + 1, depth])

    if sy == sx:
        return conv(x, channels, sy)
    if kh == 1 and sy == 1:
        y = conv(tf.reshape(x, [-1, 1, width, channels]), channels, sx)
        return tf.reshape(y, [-1, height, y.shape[2], channels])
    if kw == 1 and sx == 1:
        y = conv(tf.reshape(x, [-1, height, 1, width * channels]), width * channels, sy)
        return tf.reshape(y, [-1, y.shape[1], width, channels])
    return conv(x, channels, 1)[:, ::sy, ::sx, :]


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Upsample, pad, FIR-filter and downsample a batch of NHWC images.

    1. Upsample by inserting ``up - 1`` zeros after each pixel.
    2. Pad with zeros (negative padding crops).
    3. Convolve with ``f`` (``[taps]`` separable, ``[h, w]``, or None = identity),
       keeping only outputs whose footprint lies inside the padded image.
    4. Keep every ``down``-th pixel.

    Args:
        x: ``[N, H, W, C]`` float tensor.
        f: Filter taps (numpy / constant), ``[taps]`` or ``[h, w]``, or None.
        up: Integer upsampling factor, or ``[x, y]``.
        down: Integer downsampling factor, or ``[x, y]``.
        padding: int, ``[x, y]`` or ``[x0, x1, y0, y1]``, w.r.t. the upsampled image.
        flip_filter: False = convolution, True = correlation.
        gain: Overall scale of the result.

    Returns:
        ``[N, out_h, out_w, C]`` tensor.
    """
    x = _check_image(x)
    f = _filter_array(f)
    upx, upy = _as_int_pair(up, 'up')
    downx, downy = _as_int_pair(down, 'down')
    px0, px1, py0, py1 = parse_padding(padding)
    _, in_h, in_w, channels = x.shape
    fw, fh = filter_size(f)
    up_w = in_w * upx + px0 + px1
    up_h = in_h * upy + py0 + py1
    if up_w < fw or up_h < fh:
        raise ValueError(f'padding {padding!r} leaves a {up_h}x{up_w} image, smaller than the {fh}x{fw} filter')

    # Upsample by zero insertion, one axis at a time with 4-D pads (TFLite's Pad takes at most 5-D).
    if upx > 1:
        x = tf.reshape(x, [-1, in_w, 1, channels])
        x = tf.pad(x, [[0, 0], [0, 0], [0, upx - 1], [0, 0]])
        x = tf.reshape(x, [-1, in_h, in_w * upx, channels])
    if upy > 1:
        x = tf.reshape(x, [-1, in_h, 1, in_w * upx * channels])
        x = tf.pad(x, [[0, 0], [0, 0], [0, upy - 1], [0, 0]])
        x = tf.reshape(x, [-1, in_h * upy, in_w * upx, channels])

    # Pad and crop.
    if max(px0, px1, py0, py1) > 0:
        x = tf.pad(x, [[0, 0], [max(py0, 0), max(py1, 0)], [max(px0, 0), max(px1, 0)], [0, 0]])
    if min(px0, px1, py0, py1) < 0:
        x = x[:, max(-py0, 0): x.shape[1] - max(-py1, 0), max(-px0, 0): x.shape[2] - max(-px1, 0), :]

    # Filter and downsample in one strided correlation per axis.
    if f is None:
        if gain != 1:
            x = x * gain
        return x[:, ::downy, ::downx, :] if (downx > 1 or downy > 1) else x
    f = f * np.float32(gain ** (f.ndim / 2))
    if not flip_filter:
        f = np.flip(f, axis=tuple(range(f.ndim)))
    if f.ndim == 2:
        return _depthwise(x, f, (downy, downx))
    x = _depthwise(x, f[np.newaxis, :], (1, downx))
    return _depthwise(x, f[:, np.newaxis], (downy, 1))


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1):
    """Upsamples by ``up`` with ``f``, padded so the output is ``up`` times the input."""
    upx, upy = _as_int_pair(up, 'up')
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(_filter_array(f))
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1):
    """Downsamples by ``down`` with ``f``, padded so the output is the input / ``down``."""
    downx, downy = _as_int_pair(down, 'down')
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(_filter_array(f))
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain)


# ----------------------------------------------------------------------------
# Bias + activation.

ACTIVATIONS = {
    # name: (function(x, alpha), default alpha, default gain)
    'linear': (lambda x, alpha: x, 0.0, 1.0),
    'relu': (lambda x, alpha: tf.nn.relu(x), 0.0, float(np.sqrt(2))),
    'lrelu': (lambda x, alpha: leaky_relu(x, alpha), 0.2, float(np.sqrt(2))),
}


def leaky_relu(x, slope):
    """Leaky ReLU valid for any slope >= 0: x for x > 0, else slope * x (PyTorch's, also at 0).

    For slope <= 1 this is ``tf.nn.leaky_relu``, whose second-order gradient keeps x connected (zeros),
    as PyTorch's ``leaky_relu_backward`` does: R1 then gives the biases in front of an activation a zero
    gradient, not none, as NVIDIA's R1 phase does, so that Adam steps them (their moments decay).
    ``tf.nn.leaky_relu`` assumes slope <= 1; larger slopes use a select.
    """
    if slope == 1:
        return x
    if slope <= 1:
        return tf.nn.leaky_relu(x, alpha=slope)
    return tf.where(x > 0, x, x * tf.cast(slope, x.dtype))


def bias_act(x, b=None, act='linear', alpha=None, gain=None, clamp=None):
    """Adds a per-channel bias (last axis), applies an activation, scales and clamps."""
    if act not in ACTIVATIONS:
        raise ValueError(f'act must be one of {sorted(ACTIVATIONS)}, got {act!r}')
    if clamp is not None and clamp < 0:
        raise ValueError(f'clamp must be None or >= 0, got {clamp}')
    func, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    x = tf.convert_to_tensor(x)
    if b is not None:
        x = x + tf.cast(b, x.dtype)
    x = func(x, alpha)
    if gain != 1:
        x = x * tf.cast(gain, x.dtype)
    if clamp is not None:
        x = tf.clip_by_value(x, -tf.cast(clamp, x.dtype), tf.cast(clamp, x.dtype))
    return x


# ----------------------------------------------------------------------------
# Filtered leaky ReLU.

# Limits of filtered_lrelu, the same as the compiled op's (custom_ops/cc/kernels/filtered_lrelu.h):
# larger arguments would overflow the kernels' 32-bit indices or ask for absurd memory.
FLRELU_MAX_FACTOR = 64              # up and down.
FLRELU_MAX_TAPS = 1024              # Filter taps per axis.
FLRELU_MAX_DIM = 2 ** 24            # Height, width, |padding| and the upsampled, padded size.
FLRELU_MAX_ELEMENTS = 2 ** 31 - 1   # Elements of x and of the output.


def filtered_lrelu_output_size(in_size, fu_size, fd_size, up, down, pad0, pad1):
    """Output length along one axis of ``filtered_lrelu`` (sizes are ints; <= 0 means empty)."""
    return (in_size * up + pad0 + pad1 - (fu_size - 1) - (fd_size - 1) + (down - 1)) // down


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_filtered_lrelu_args(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """Validates ``filtered_lrelu`` arguments; returns ``(x, fu, fd, padding)`` normalised.

    Raises ``ValueError`` naming the offending argument, also for sizes over the limits
    above (``FLRELU_MAX_*``).
    """
    x = _check_image(x)
    fu = _filter_array(fu, 'fu')
    fd = _filter_array(fd, 'fd')
    for name, value in (('up', up), ('down', down)):
        if not _is_int(value) or not 1 <= value <= FLRELU_MAX_FACTOR:
            raise ValueError(f'{name} must be an int in [1, {FLRELU_MAX_FACTOR}], got {value!r}')
    for name, f in (('fu', fu), ('fd', fd)):
        if f is not None and max(f.shape) > FLRELU_MAX_TAPS:
            raise ValueError(f'{name} must have at most {FLRELU_MAX_TAPS} taps per axis, got shape {list(f.shape)}')
    padding = parse_padding(padding)
    if any(abs(p) > FLRELU_MAX_DIM for p in padding):
        raise ValueError(f'padding values must be in [-{FLRELU_MAX_DIM}, {FLRELU_MAX_DIM}], got {list(padding)}')
    if b is not None:
        b_shape = tuple(b.shape)
        if b_shape != (x.shape[-1],):
            raise ValueError(f'b must have shape [{x.shape[-1]}] (the channels of x), got {list(b_shape)}')
    for name, value, ok in (('gain', gain, lambda v: v > 0), ('slope', slope, lambda v: v >= 0)):
        if not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and ok(value)):
            raise ValueError(f'{name} must be a finite number {"> 0" if name == "gain" else ">= 0"}, got {value!r}')
    if clamp is not None and not (isinstance(clamp, (int, float, np.number)) and clamp >= 0):
        raise ValueError(f'clamp must be None or a number >= 0, got {clamp!r}')
    batch, in_h, in_w, channels = x.shape
    if max(in_h, in_w) > FLRELU_MAX_DIM or (batch or 1) * in_h * in_w * channels > FLRELU_MAX_ELEMENTS:
        raise ValueError(f'x must have height and width <= {FLRELU_MAX_DIM} and at most {FLRELU_MAX_ELEMENTS} '
                         f'elements, got shape {x.shape}')
    px0, px1, py0, py1 = padding
    for axis, size, p0, p1 in (('width', in_w, px0, px1), ('height', in_h, py0, py1)):
        if size * up + p0 + p1 > FLRELU_MAX_DIM:
            raise ValueError(f'up {up} and padding {list(padding)} give an upsampled {axis} of {size * up + p0 + p1}, '
                             f'over the limit {FLRELU_MAX_DIM}')
    out_w = filtered_lrelu_output_size(in_w, filter_size(fu)[0], filter_size(fd)[0], up, down, px0, px1)
    out_h = filtered_lrelu_output_size(in_h, filter_size(fu)[1], filter_size(fd)[1], up, down, py0, py1)
    if out_w < 1 or out_h < 1:
        raise ValueError(f'padding {list(padding)} gives an empty output ({out_h}x{out_w}) for a {in_h}x{in_w} input')
    if (batch or 1) * out_h * out_w * channels > FLRELU_MAX_ELEMENTS:
        raise ValueError(f'the output [{batch}, {out_h}, {out_w}, {channels}] would have more than '
                         f'{FLRELU_MAX_ELEMENTS} elements (up {up}, down {down}, padding {list(padding)})')
    return x, fu, fd, padding


def filtered_lrelu_ref(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2,
                       clamp=None, flip_filter=False):
    """Reference (unfused) filtered leaky ReLU from stock TF ops; see ``filtered_lrelu``."""
    x, fu, fd, padding = check_filtered_lrelu_args(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    if b is not None:
        x = x + tf.cast(b, x.dtype)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2, flip_filter=flip_filter)
    x = bias_act(x, act='lrelu', alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


_warned_fallback = False


def _custom_op_module():
    """Returns the loaded custom-op wrapper module, or None when unavailable."""
    if os.environ.get(FORCE_REF_ENV, '0') not in ('', '0'):
        return None
    try:
        from afgan_tf import custom_ops
    except ImportError:
        return None
    return custom_ops if custom_ops.is_available() else None


def _custom_op_error():
    try:
        from afgan_tf import custom_ops
    except ImportError as e:
        return str(e)
    return custom_ops.load_error()


def filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=np.sqrt(2), slope=0.2, clamp=None,
                   flip_filter=False, impl='auto'):
    """Filtered leaky ReLU for a batch of NHWC images.

    Per channel: add bias ``b``; upsample by ``up`` (zero insertion); pad by
    ``padding``; convolve with ``fu`` (scaled by ``up**2``); multiply by ``gain``;
    leaky ReLU with ``slope``; clamp to ``[-clamp, clamp]``; convolve with ``fd``;
    keep every ``down``-th pixel.

    Args:
        x: ``[N, H, W, C]`` float tensor.
        fu: Upsampling filter, ``[taps]`` (separable), ``[h, w]``, or None (identity).
        fd: Downsampling filter, ``[taps]`` (separable), ``[h, w]``, or None (identity).
        b: Bias ``[C]`` or None.
        up: Integer upsampling factor >= 1.
        down: Integer downsampling factor >= 1.
        padding: int, ``[x, y]`` or ``[x0, x1, y0, y1]`` w.r.t. the upsampled image.
        gain: Scale applied before the nonlinearity's clamp (> 0).
        slope: Negative-side slope of the leaky ReLU (>= 0).
        clamp: Maximum output magnitude before downsampling, or None.
        flip_filter: False = convolution, True = correlation.
        impl: 'auto' (custom op when its library is loaded, else the reference path),
            'ref' (stock TF ops), or 'custom' (the compiled op; error if unavailable).

    Returns:
        ``[N, out_h, out_w, C]`` tensor of the dtype of ``x``.
    """
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    if impl == 'ref':
        return filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    module = _custom_op_module()
    if module is None:
        if impl == 'custom':
            raise RuntimeError('impl="custom" requested but the filtered_lrelu custom op library is not loaded '
                               f'(build it with `python -m afgan_tf.custom_ops.build`; {FORCE_REF_ENV} must be unset)')
        global _warned_fallback
        if not _warned_fallback and os.environ.get(FORCE_REF_ENV, '0') in ('', '0'):
            warnings.warn(f'afgan_tf: the filtered_lrelu custom op is not available ({_custom_op_error()}); '
                          'using the pure-TF reference path, which gives the same results more slowly. '
                          'Build the op with `python -m afgan_tf.custom_ops.build`.', RuntimeWarning, stacklevel=2)
            _warned_fallback = True
        return filtered_lrelu_ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    return module.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
