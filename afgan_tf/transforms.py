"""The StyleGAN3 input transform: translating / rotating the generated image.

The synthesis input takes the *inverse* (output -> input coordinates) 3x3 matrix of
"rotate by `rotate` degrees, then translate by `translate`" (in units of the image
size), as NVIDIA's gen_images.py writes into ``synthesis.input.transform``.
"""

import numpy as np
import tensorflow as tf


def make_transform(translate=(0.0, 0.0), rotate=0.0):
    """The inverse transform as a float32 ``[3, 3]`` numpy array (rotate in degrees)."""
    angle = np.deg2rad(rotate)
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, s, translate[0]], [-s, c, translate[1]], [0, 0, 1]])
    return np.linalg.inv(m).astype(np.float32)


def make_transforms_tf(translate, rotate):
    """Batched ``make_transform`` in TensorFlow: translate ``[N, 2]``, rotate ``[N]`` degrees -> ``[N, 3, 3]``."""
    translate = tf.convert_to_tensor(translate, tf.float32)
    angle = tf.convert_to_tensor(rotate, tf.float32) * (np.pi / 180)
    c, s = tf.cos(angle), tf.sin(angle)
    tx, ty = translate[:, 0], translate[:, 1]
    zero, one = tf.zeros_like(c), tf.ones_like(c)
    # Closed-form inverse of [[c, s, tx], [-s, c, ty], [0, 0, 1]].
    rows = [c, -s, -(c * tx - s * ty), s, c, -(s * tx + c * ty), zero, zero, one]
    return tf.reshape(tf.stack(rows, axis=1), [-1, 3, 3])
