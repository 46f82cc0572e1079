"""afgan_tf.transforms: the inverse output transform, in numpy and batched in TensorFlow."""

import numpy as np

from afgan_tf import transforms


def test_make_transform_is_the_inverse_of_rotate_then_translate():
    m = transforms.make_transform((0.1, -0.05), 10)
    a = np.deg2rad(10)
    forward = np.array([[np.cos(a), np.sin(a), 0.1], [-np.sin(a), np.cos(a), -0.05], [0, 0, 1]])
    assert np.allclose(m @ forward, np.eye(3), atol=1e-6) and m.dtype == np.float32
    assert np.allclose(transforms.make_transform(), np.eye(3))


def test_batched_tf_transforms_equal_the_numpy_ones():
    translate = np.array([[0.1, -0.05], [0.0, 0.3], [-0.2, 0.0]], np.float32)
    rotate = np.array([10.0, -45.0, 0.0], np.float32)
    batched = transforms.make_transforms_tf(translate, rotate).numpy()
    for i in range(3):
        assert np.allclose(batched[i], transforms.make_transform(translate[i], rotate[i]), atol=1e-6)
