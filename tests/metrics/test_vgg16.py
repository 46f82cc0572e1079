"""afgan_tf.metrics.vgg16: fc2 features and convolutional features of any image size."""

import numpy as np


def test_vgg16_features_accept_any_size(random_vgg16_file):
    from afgan_tf.metrics.vgg16 import LPIPS_LAYERS, Vgg16Features
    vgg = Vgg16Features(random_vgg16_file)
    for size in (32, 64, 256):
        feats = vgg.lpips_features(np.zeros([1, size, size, 3], np.float32) + 100)
        assert len(feats) == len(LPIPS_LAYERS) and feats[0].shape[1:3] == (size, size)
    # The conv model shares the classifier model's weights (not a copy that could drift).
    assert vgg.convs.get_layer('block1_conv1').kernel is vgg.fc2.get_layer('block1_conv1').kernel
    assert vgg.features(np.zeros([2, 32, 32, 1], np.float32)).shape == (2, 4096)
