"""afgan_tf: StyleGAN3 (Alias-Free GAN) and StyleGAN2 in TensorFlow 2 / Keras 3.

    import afgan_tf
    G = afgan_tf.Generator(architecture='stylegan3-t', img_resolution=256)
    img = G(z, truncation_psi=0.7)          # [N, H, W, C] float32 in about [-1, 1]
"""

from afgan_tf import filters, ops, stylegan3_layers
from afgan_tf.networks import PRESETS, Discriminator, Generator
from afgan_tf import nvidia

__version__ = '0.1.0'
__all__ = ['Generator', 'Discriminator', 'PRESETS', 'filters', 'ops', 'stylegan3_layers', 'nvidia']
