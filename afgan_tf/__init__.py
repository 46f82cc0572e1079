"""afgan_tf: StyleGAN3 (Alias-Free GAN) and StyleGAN2 in TensorFlow 2 / Keras 3.

    import afgan_tf
    G = afgan_tf.Generator(architecture='stylegan3-t', img_resolution=256)
    img = G(z, truncation_psi=0.7)          # [N, H, W, C] float32 in about [-1, 1]

The models and modules below are imported on first use, so ``import afgan_tf`` alone does not start
TensorFlow (the console scripts quiet its start-up first).
"""

import importlib

__version__ = '0.1.0'
__all__ = ['Generator', 'Discriminator', 'PRESETS', 'filters', 'ops', 'stylegan3_layers', 'nvidia']
_FROM_NETWORKS = ('Generator', 'Discriminator', 'PRESETS')


def __getattr__(name):
    if name in _FROM_NETWORKS:
        return getattr(importlib.import_module('afgan_tf.networks'), name)
    if name in __all__:
        return importlib.import_module(f'afgan_tf.{name}')
    raise AttributeError(f'module afgan_tf has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(__all__))
