"""Keras layers shared by the StyleGAN2 and StyleGAN3 generators and discriminator.

All layers work in NHWC and keep their parameters in the reference
implementation's layout and scale (e.g. conv weights ``[out, in, kh, kw]``, stored
before the equalised-learning-rate gain), so that NVIDIA state dicts load by name.
Every layer registers its variables and sublayers under the reference's names;
``reference_variables(layer)`` lists them as ``{'synthesis.L0_36_512.weight': var}``.
"""

import contextlib
import threading

import numpy as np
import tensorflow as tf
import keras

from afgan_tf import ops


# ----------------------------------------------------------------------------
# Reference-name registry.

_DECLARE = threading.local()       # .active: ref_weight records shapes instead of creating variables.


class DeclaredWeight:
    """A weight's shape and kind, as ``declared_shapes`` records it (no variable, no memory)."""

    def __init__(self, shape, trainable):
        self.shape, self.trainable = tuple(int(d) for d in shape), bool(trainable)


@contextlib.contextmanager
def declared_shapes():
    """Models built inside record every weight's shape (``DeclaredWeight``) without allocating it: the
    importers compare a file's tensors with the architecture its arguments claim before building it."""
    previous = getattr(_DECLARE, 'active', False)
    _DECLARE.active = True
    try:
        yield
    finally:
        _DECLARE.active = previous


class RefLayer(keras.layers.Layer):
    """A layer whose variables and children carry the reference implementation's names."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ref_names = []        # (reference name, attribute name) of own variables and children, in order.

    def ref_weight(self, name, shape, initializer, trainable=True):
        """Creates a variable stored as attribute ``name`` and registered under that name. ``initializer``: a
        number, an array, or a callable ``(shape, dtype=None)`` (called only when the variable is created)."""
        if getattr(_DECLARE, 'active', False):
            var = DeclaredWeight(shape, trainable)
            setattr(self, name, var)
            self._ref_names.append((name, name))
            return var
        if isinstance(initializer, np.ndarray) or np.isscalar(initializer):
            value = np.asarray(initializer, dtype=np.float32)
            initializer = lambda shape, dtype=None: tf.constant(np.broadcast_to(value, shape), dtype='float32')
        var = self.add_weight(name=name, shape=tuple(shape), initializer=initializer, trainable=trainable,
                              dtype='float32', aggregation='only_first_replica' if not trainable else 'none')
        setattr(self, name, var)
        self._ref_names.append((name, name))
        return var

    def ref_child(self, name, layer, attr=None):
        """Stores ``layer`` as attribute ``attr`` (default ``name``) and registers it as ``name``."""
        attr = attr or name
        setattr(self, attr, layer)
        self._ref_names.append((name, attr))
        return layer


def reference_variables(layer, prefix=''):
    """Returns ``{reference_name: variable}`` for a ``RefLayer`` tree (depth first)."""
    out = {}
    for name, attr in layer._ref_names:
        item = getattr(layer, attr)
        key = f'{prefix}{name}'
        if isinstance(item, RefLayer):
            out.update(reference_variables(item, key + '.'))
        else:
            out[key] = item
    return out


def random_normal(rng, shape, key=None):
    """An N(0, 1) draw of ``shape`` from ``rng``: None (TF's global generator), a ``tf.random.Generator``,
    or a draw function ``fn(shape, key)`` (a training step's random source; ``key`` names what draws)."""
    if rng is None:
        return tf.random.normal(shape)
    if isinstance(rng, tf.random.Generator):
        return rng.normal(shape)
    return rng(shape, key)


def normal_init(rng, scale=1.0):
    """A lazy initializer: ``rng.standard_normal(shape) * scale`` when the variable is created."""
    return lambda shape, dtype=None: tf.constant(rng.standard_normal(shape) * scale, dtype='float32')


def _randn(seed_gen):
    def init(shape, dtype=None):
        return tf.constant(seed_gen.standard_normal(shape), dtype='float32')
    return init


def _check_shape(x, expected, name):
    """Raises ValueError unless tensor ``x`` has shape ``expected`` (None = any)."""
    shape = tuple(x.shape)
    if len(shape) != len(expected) or any(e is not None and s is not None and s != e for s, e in zip(shape, expected)):
        exp = ', '.join('N' if e is None else str(e) for e in expected)
        raise ValueError(f'{name} must have shape [{exp}], got {list(shape)}')


NOISE_MODES = ('random', 'const', 'none')


def check_resolution(img_resolution):
    """Raises ValueError unless img_resolution is a power of two >= 4."""
    if not isinstance(img_resolution, (int, np.integer)) or img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise ValueError(f'img_resolution must be a power of two >= 4, got {img_resolution!r}')


def check_synthesis_args(ws, noise_mode, num_ws, w_dim):
    """Validates a synthesis call; returns ws as a float32 tensor [N, num_ws, w_dim]."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
    ws = tf.convert_to_tensor(ws, dtype='float32')
    _check_shape(ws, [None, num_ws, w_dim], 'ws')
    return ws


def to_tf_kernel(weight):
    """``[out, in, kh, kw]`` (reference) -> ``[kh, kw, in, out]`` (tf.nn.conv2d)."""
    return tf.transpose(weight, [2, 3, 1, 0])


def conv2d(x, weight, padding=0, stride=1):
    """Correlation with a reference-layout kernel and symmetric zero padding, in the dtype of ``x``."""
    if padding:
        x = tf.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    return tf.nn.conv2d(x, to_tf_kernel(tf.cast(weight, x.dtype)), strides=stride, padding='VALID')


REDUCED_DTYPES = ('float16', 'bfloat16')


def fp16_resolution(img_resolution, num_fp16_res):
    """The lowest block resolution computed in reduced precision (NVIDIA's StyleGAN2 rule)."""
    return max(2 ** (int(np.log2(img_resolution)) + 1 - int(num_fp16_res)), 8)


class PrecisionMixin:
    """A layer or block that may compute in reduced precision: ``compute_dtype`` is set at run time
    (``set_precision`` of the networks); ``cast_in`` brings activations to it. Variables stay float32."""

    compute_dtype_name = 'float32'

    def cast_in(self, x):
        return x if x is None else tf.cast(x, self.compute_dtype_name)


def check_precision(dtype):
    if dtype not in ('float32',) + REDUCED_DTYPES:
        raise ValueError(f"precision must be 'float32', 'float16' or 'bfloat16', got {dtype!r}")
    return dtype


# ----------------------------------------------------------------------------
# Fully connected and mapping.

class FullyConnected(RefLayer):
    """Dense layer with equalised learning rate and a learning-rate multiplier."""

    def __init__(self,
                 in_features,           # Number of input features.
                 out_features,          # Number of output features.
                 activation='linear',   # Activation: 'linear', 'relu' or 'lrelu'.
                 use_bias=True,         # Add a bias before the activation?
                 lr_multiplier=1.0,     # Learning-rate multiplier.
                 weight_init=1.0,       # Initial standard deviation of the weights.
                 bias_init=0.0,         # Initial bias value (scalar or [out_features]).
                 seed=None,             # Seed of the weight initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.lr_multiplier = float(lr_multiplier)
        self.weight_init = float(weight_init)
        self.bias_init = np.asarray(bias_init, dtype=np.float32).tolist()
        self.seed = seed
        rng = np.random.default_rng(seed)
        std = self.weight_init / self.lr_multiplier
        self.ref_weight('weight', [self.out_features, self.in_features], normal_init(rng, std))
        if self.use_bias:
            bias = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [self.out_features]) / self.lr_multiplier
            self.ref_weight('bias', [self.out_features], bias)
        self.weight_gain = float(self.lr_multiplier / np.sqrt(self.in_features))
        self.bias_gain = self.lr_multiplier
        self.built = True

    def call(self, x):
        x = tf.matmul(x, self.weight * self.weight_gain, transpose_b=True)
        b = self.bias * self.bias_gain if self.use_bias else None
        return ops.bias_act(x, b, act=self.activation)

    def get_config(self):
        return {**super().get_config(), 'in_features': self.in_features, 'out_features': self.out_features,
                'activation': self.activation, 'use_bias': self.use_bias, 'lr_multiplier': self.lr_multiplier,
                'weight_init': self.weight_init, 'bias_init': self.bias_init, 'seed': self.seed}


def normalize_2nd_moment(x, eps=1e-8):
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + eps)


class MappingNetwork(RefLayer):
    """Maps latents z (and labels c) to intermediate latents w, with w_avg tracking and truncation."""

    def __init__(self,
                 z_dim,                 # Input latent (Z) dimensionality, 0 = no latent.
                 c_dim,                 # Conditioning label (C) dimensionality, 0 = no label.
                 w_dim,                 # Intermediate latent (W) dimensionality.
                 num_ws,                # Number of ws to broadcast to, None = do not broadcast.
                 num_layers=2,          # Number of fully connected layers.
                 embed_features=None,   # Label embedding size, None = w_dim.
                 layer_features=None,   # Hidden layer size, None = w_dim.
                 activation='lrelu',    # Activation of the layers.
                 lr_multiplier=0.01,    # Learning-rate multiplier of the layers.
                 w_avg_beta=0.998,      # Decay of the tracked average of w, None = do not track.
                 seed=None,             # Seed of the weight initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_ws = None if num_ws is None else int(num_ws)
        self.num_layers = int(num_layers)
        self.embed_features = embed_features
        self.layer_features = layer_features
        self.activation = activation
        self.lr_multiplier = lr_multiplier
        self.w_avg_beta = w_avg_beta
        self.seed = seed
        embed = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        hidden = w_dim if layer_features is None else layer_features
        features = [self.z_dim + embed] + [hidden] * (self.num_layers - 1) + [self.w_dim]
        seeds = np.random.SeedSequence(seed).generate_state(self.num_layers + 1)
        if self.c_dim > 0:
            self.ref_child('embed', FullyConnected(self.c_dim, embed, seed=int(seeds[-1]), name='embed'))
        for idx in range(self.num_layers):
            self.ref_child(f'fc{idx}', FullyConnected(features[idx], features[idx + 1], activation=activation,
                                                      lr_multiplier=lr_multiplier, seed=int(seeds[idx]), name=f'fc{idx}'))
        if self.num_ws is not None and w_avg_beta is not None:
            self.ref_weight('w_avg', [self.w_dim], 0.0, trainable=False)
        self.built = True

    def call(self, z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = None
        if self.z_dim > 0:
            z = tf.convert_to_tensor(z, dtype='float32')
            _check_shape(z, [None, self.z_dim], 'z')
            x = normalize_2nd_moment(z)
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f'c is required: this network is conditional (c_dim={self.c_dim})')
            c = tf.convert_to_tensor(c, dtype='float32')
            _check_shape(c, [None, self.c_dim], 'c')
            y = normalize_2nd_moment(self.embed(c))
            x = y if x is None else tf.concat([x, y], axis=1)
        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)
        if update_emas and self.w_avg_beta is not None:
            batch_mean = tf.reduce_mean(x, axis=0)
            self.w_avg.assign(batch_mean + (self.w_avg - batch_mean) * self.w_avg_beta)
        if self.num_ws is None:
            return x
        x = tf.tile(x[:, tf.newaxis, :], [1, self.num_ws, 1])
        if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
            return x
        if self.w_avg_beta is None:
            raise ValueError('truncation needs w_avg, but this mapping network does not track it (w_avg_beta=None)')
        cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
        psi = tf.cast(truncation_psi, 'float32')
        truncated = self.w_avg + (x - self.w_avg) * psi
        mask = (tf.range(self.num_ws) < cutoff)[tf.newaxis, :, tf.newaxis]
        return tf.where(mask, truncated, x)

    def get_config(self):
        return {**super().get_config(), 'z_dim': self.z_dim, 'c_dim': self.c_dim, 'w_dim': self.w_dim,
                'num_ws': self.num_ws, 'num_layers': self.num_layers, 'embed_features': self.embed_features,
                'layer_features': self.layer_features, 'activation': self.activation,
                'lr_multiplier': self.lr_multiplier, 'w_avg_beta': self.w_avg_beta, 'seed': self.seed}


# ----------------------------------------------------------------------------
# Modulated convolution.

def modulated_conv2d(x, weight, styles, demodulate=True, padding=0, input_gain=None, prenormalize=False,
                     up=1, resample_filter=None):
    """Modulated convolution, computed by scaling activations around one shared conv.

    Mathematically identical to the reference's grouped convolution with per-sample
    weights ``w * s * dcoef * input_gain`` but one ordinary (batched) convolution,
    which is much faster on CPUs.

    Args:
        x: ``[N, H, W, I]`` activations.
        weight: ``[O, I, kh, kw]`` shared kernel (reference layout).
        styles: ``[N, I]`` modulation.
        demodulate: Normalise each output channel to unit expected magnitude.
        padding: Zero padding of the input (for ``up == 1``), or w.r.t. the
            upsampled image as in the reference's ``conv2d_resample``.
        input_gain: Optional scalar gain of the input channels (StyleGAN3).
        prenormalize: Normalise ``weight`` and ``styles`` first (StyleGAN3).
        up: 1, or 2 for a transposed (fractionally strided) convolution followed by
            ``resample_filter`` (StyleGAN2).
        resample_filter: Low-pass filter for ``up > 1``.
    """
    out_channels, in_channels, kh, kw = weight.shape
    if demodulate and prenormalize:
        weight = weight * tf.math.rsqrt(tf.reduce_mean(tf.square(weight), axis=[1, 2, 3], keepdims=True))
        styles = styles * tf.math.rsqrt(tf.reduce_mean(tf.square(styles)))
    scale = styles if input_gain is None else styles * input_gain
    # Reduced precision: the convolution runs in the dtype of x; the modulation and demodulation
    # coefficients are computed in float32 (as the weights are stored) and cast.
    x = x * tf.cast(scale, x.dtype)[:, tf.newaxis, tf.newaxis, :]
    if up == 1:
        x = conv2d(x, weight, padding=padding)
    else:
        batch = tf.shape(x)[0]
        in_h, in_w = x.shape[1], x.shape[2]
        out_shape = [batch, (in_h - 1) * up + kh, (in_w - 1) * up + kw, out_channels]
        # conv2d_transpose correlates with the kernel flipped, i.e. true convolution here,
        # as the reference's conv2d_resample does for up > 1.
        x = tf.nn.conv2d_transpose(x, tf.cast(tf.transpose(weight, [2, 3, 0, 1]), x.dtype), out_shape, strides=up,
                                   padding='VALID')
        fw, fh = ops.filter_size(resample_filter)
        pad = [padding + (fw + up - 1) // 2 - (kw - 1), padding + (fw - up) // 2 - (kw - up),
               padding + (fh + up - 1) // 2 - (kh - 1), padding + (fh - up) // 2 - (kh - up)]
        x = ops.upfirdn2d(x, resample_filter, padding=pad, gain=up ** 2)
    if demodulate:
        wsq = tf.transpose(tf.reduce_sum(tf.square(weight), axis=[2, 3]))      # [I, O]
        dcoefs = tf.math.rsqrt(tf.matmul(tf.square(styles), wsq) + 1e-8)        # [N, O]
        x = x * tf.cast(dcoefs, x.dtype)[:, tf.newaxis, tf.newaxis, :]
    return x
