"""VGG16 features for precision/recall (fc2, 4096-d) and for the projector's LPIPS-style distance.

The weights are never downloaded: the user supplies the standard Keras ImageNet VGG16 weights
file (``vgg16_weights_tf_dim_ordering_tf_kernels.h5``, with the classifier top) through the
``path`` argument, ``--vgg16``, or ``$AFGAN_TF_VGG16``.
"""

import os

import keras
import numpy as np
import tensorflow as tf

WEIGHTS_HINT = ('supply the Keras ImageNet VGG16 weights (with top), e.g. '
                'vgg16_weights_tf_dim_ordering_tf_kernels.h5 from '
                'https://storage.googleapis.com/tensorflow/keras-applications/vgg16/ '
                '(or keras.applications.VGG16(weights="imagenet").save_weights("vgg16.weights.h5") on a machine '
                'with internet), and pass its path with --vgg16 or $AFGAN_TF_VGG16')
LPIPS_LAYERS = ('block1_conv2', 'block2_conv2', 'block3_conv3', 'block4_conv3', 'block5_conv3')
INPUT_SIZE = 224
_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


def vgg16_weights_path(path=None):
    """The VGG16 weights file to use, or a ``FileNotFoundError`` saying how to supply one."""
    path = path or os.environ.get('AFGAN_TF_VGG16')
    if not path:
        raise FileNotFoundError(f'VGG16 weights are needed (precision/recall, projector perceptual loss): {WEIGHTS_HINT}')
    return check_weights_file(path, WEIGHTS_HINT)


def check_weights_file(path, hint):
    """``path`` if it is a regular file; FileNotFoundError saying what it is instead (missing, a FIFO, ...) and
    ``hint``, how to supply one."""
    if not os.path.exists(path):
        raise FileNotFoundError(f'VGG16 weights file not found: {path!r}; {hint}')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'VGG16 weights {path!r} is not a regular file; {hint}')
    return path


def preprocess_vgg(images, size=INPUT_SIZE):
    """NHWC [0, 255], 1 or 3 channels -> area-resized to ``size``, BGR, ImageNet mean subtracted."""
    x = tf.cast(tf.convert_to_tensor(images), tf.float32)
    if x.shape.rank != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f'images: expected NHWC with 1 or 3 channels, got shape {x.shape}')
    if x.shape[-1] == 1:
        x = tf.tile(x, [1, 1, 1, 3])
    if size and (x.shape[1] != size or x.shape[2] != size):
        x = tf.image.resize(x, [size, size], method='area' if x.shape[1] > size else 'bilinear')
    return x[..., ::-1] - _BGR_MEAN


class Vgg16Features:
    """fc2 features (``features``) and unit-normalised conv features (``lpips_features``) of VGG16."""

    def __init__(self, path=None):
        path = vgg16_weights_path(path)
        try:
            base = keras.applications.VGG16(weights=path, include_top=True)
        except (ValueError, OSError) as e:
            raise ValueError(f'{path}: not a Keras VGG16 weights file with top ({e}); {WEIGHTS_HINT}') from e
        self.path = path
        from afgan_tf.cache import file_digest
        self.weights_id = file_digest(path)         # Part of the real-statistics cache key.
        self.fc2 = keras.Model(base.input, base.get_layer('fc2').output)
        # The convolutional part on any input size: the same layers without the classifier, holding the
        # very same weight variables (the fc2 model's input is fixed at 224x224 by its Flatten + Dense).
        inputs = keras.Input([None, None, 3])
        x, outputs = inputs, {}
        for layer in base.layers[1:]:
            if layer.name == 'flatten':
                break
            x = layer(x)
            outputs[layer.name] = x
        self.convs = keras.Model(inputs, [outputs[n] for n in LPIPS_LAYERS])
        self._fc2 = tf.function(lambda x: self.fc2(preprocess_vgg(x), training=False))

    def __call__(self, images, batch_size=32):
        return self.features(images, batch_size)

    def features(self, images, batch_size=32):
        """Images (NHWC, [0, 255]) -> [N, 4096] fc2 features."""
        outs = [self._fc2(images[i:i + batch_size]).numpy() for i in range(0, int(images.shape[0]), batch_size)]
        return np.concatenate(outs, 0)

    def lpips_features(self, images, size=None):
        """Differentiable: list of [N, H, W, C] conv features, each unit-normalised over channels."""
        x = preprocess_vgg(images, size=size)
        return [f / (tf.norm(f, axis=-1, keepdims=True) + 1e-10) for f in self.convs(x, training=False)]
