"""afgan_tf.metrics.inception: the FID Inception-v3 against NVIDIA's features, and its front end."""

import numpy as np
import pytest

from afgan_tf.metrics import inception


def test_inception_features_match_reference(fid_inception, reference_dir):
    data = np.load(reference_dir / 'inception_features.npz')
    x = (data['inputs_nchw_uint8'].astype(np.float32).transpose(0, 2, 3, 1) - 128) / 128
    got = fid_inception.model(x, training=False).numpy()
    ref = data['features']
    assert got.shape == ref.shape and ref.shape[1:] == (2048,)
    assert np.max(np.abs(got - ref)) <= 2e-5          # Measured: 4.6e-6 (max |feature| 4.5).
    assert np.linalg.norm(got - ref) <= 1e-5 * np.linalg.norm(ref)
    # Front end: uint8-range 299x299 images normalised as (x - 128) / 128 give the same features.
    u8 = np.round(x * 128 + 128).clip(0, 255).astype(np.uint8)
    assert np.max(np.abs(u8.astype(np.float32) - (x * 128 + 128))) < 1e-3      # inputs are exact uint8 values
    assert np.max(np.abs(fid_inception(u8) - ref)) <= 2e-5


def test_inception_front_end_resize_and_grey():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, [2, 32, 48, 1]).astype(np.uint8)
    x = inception.preprocess_images(img).numpy()
    assert x.shape == (2, 299, 299, 3)
    assert np.array_equal(x[..., 0], x[..., 2])                 # grey repeated to RGB
    assert x.min() >= -1 and x.max() <= 127 / 128
    # Bilinear with half-pixel centres: a constant image stays constant, a 299 image is untouched.
    assert np.allclose(inception.preprocess_images(np.full([1, 7, 9, 3], 200, np.uint8)), 72 / 128)
    same = rng.integers(0, 256, [1, 299, 299, 3]).astype(np.uint8)
    assert np.array_equal(inception.preprocess_images(same).numpy(), (same.astype(np.float32) - 128) / 128)
    with pytest.raises(ValueError, match='images: expected NHWC with 1 or 3 channels'):
        inception.preprocess_images(np.zeros([1, 8, 8, 2], np.uint8))
