"""Generator and discriminator models, and the architecture presets (as data)."""

import json

import numpy as np
import tensorflow as tf
import keras

from afgan_tf import stylegan2, stylegan3
from afgan_tf.layers import MappingNetwork, check_resolution, reference_variables

# Architecture presets: which synthesis network, and the defaults that the reference's
# train.py uses for that config. Explicit keyword arguments override them.
PRESETS = {
    'stylegan3-t': dict(synthesis='stylegan3', mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict()),
    'stylegan3-r': dict(synthesis='stylegan3', mapping_kwargs=dict(num_layers=2),
                        synthesis_kwargs=dict(conv_kernel=1, use_radial_filters=True, channel_base=65536,
                                              channel_max=1024)),
    'stylegan2': dict(synthesis='stylegan2', mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict()),
}
SYNTHESIS_NETWORKS = {'stylegan3': stylegan3.SynthesisNetwork, 'stylegan2': stylegan2.SynthesisNetwork}


def _plain(config):
    """A plain-Python copy of a config dict (Keras wraps dict attributes in tracking containers)."""
    return json.loads(json.dumps(config))


def _check_positive_int(value, name, minimum=1):
    if not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')


def _check_common(img_resolution, img_channels):
    check_resolution(img_resolution)
    _check_positive_int(img_channels, 'img_channels')


@keras.saving.register_keras_serializable(package='afgan_tf')
class Generator(keras.Model):
    """StyleGAN3-T / StyleGAN3-R / StyleGAN2 generator: ``mapping`` (z -> ws) and ``synthesis`` (ws -> image).

    Images are NHWC float32, nominally in [-1, 1].
    """

    def __init__(self,
                 architecture='stylegan3-t',    # 'stylegan3-t', 'stylegan3-r' or 'stylegan2'.
                 z_dim=512,                     # Input latent (Z) dimensionality.
                 w_dim=512,                     # Intermediate latent (W) dimensionality.
                 img_resolution=256,            # Output resolution (power of two).
                 img_channels=3,                # Number of output color channels.
                 c_dim=0,                       # Conditioning label dimensionality, 0 = unconditional.
                 mapping_kwargs=None,           # Arguments of MappingNetwork (num_layers, lr_multiplier, ...).
                 seed=None,                     # Seed of the weight initialisation.
                 name='generator',
                 **synthesis_kwargs):           # Arguments of the synthesis network (channel_base, ...).
        if architecture not in PRESETS:
            raise ValueError(f'architecture must be one of {sorted(PRESETS)}, got {architecture!r}')
        _check_common(img_resolution, img_channels)
        _check_positive_int(z_dim, 'z_dim', minimum=0 if c_dim else 1)
        _check_positive_int(w_dim, 'w_dim')
        _check_positive_int(c_dim, 'c_dim', minimum=0)
        dtype = synthesis_kwargs.pop('dtype', None)
        trainable = synthesis_kwargs.pop('trainable', True)
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        preset = PRESETS[architecture]
        self.architecture = architecture
        self.z_dim, self.w_dim, self.c_dim = int(z_dim), int(w_dim), int(c_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.seed = seed
        self.mapping_kwargs = {**preset['mapping_kwargs'], **(mapping_kwargs or {})}
        self.synthesis_kwargs = {**preset['synthesis_kwargs'], **synthesis_kwargs}
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(2)]
        self.synthesis = SYNTHESIS_NETWORKS[preset['synthesis']](
            w_dim=self.w_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
            seed=seeds[0], name='synthesis', **self.synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                      seed=seeds[1], name='mapping', **self.mapping_kwargs)
        self.supports_jit = preset['synthesis'] != 'stylegan3'
        self.built = True

    def call(self, z, c=None, truncation_psi=1, truncation_cutoff=None, transform=None, noise_mode='const',
             update_emas=False, impl='auto'):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, transform=transform, noise_mode=noise_mode, update_emas=update_emas, impl=impl)

    def reference_variables(self):
        """``{reference state-dict name: variable}`` for every parameter and buffer variable."""
        return {**reference_variables(self.mapping, 'mapping.'), **reference_variables(self.synthesis, 'synthesis.')}

    def get_config(self):
        return {'name': self.name, 'architecture': self.architecture, 'z_dim': self.z_dim, 'w_dim': self.w_dim,
                'img_resolution': self.img_resolution, 'img_channels': self.img_channels, 'c_dim': self.c_dim,
                'mapping_kwargs': _plain(self.mapping_kwargs), 'seed': self.seed, **_plain(self.synthesis_kwargs)}


@keras.saving.register_keras_serializable(package='afgan_tf')
class Discriminator(keras.Model):
    """StyleGAN2 residual discriminator (used with every generator). Returns logits ``[N, 1]``."""

    def __init__(self,
                 img_resolution=256,            # Input resolution (power of two).
                 img_channels=3,                # Number of input color channels.
                 c_dim=0,                       # Conditioning label dimensionality, 0 = unconditional.
                 architecture='resnet',         # Only 'resnet'.
                 channel_base=32768,            # Overall multiplier for the number of channels.
                 channel_max=512,               # Maximum number of channels in any layer.
                 num_fp16_res=4,                # Accepted for compatibility; computation is float32.
                 conv_clamp=256,                # Clamp of conv outputs, None = disable.
                 cmap_dim=None,                 # Dimensionality of the mapped label, None = default.
                 block_kwargs=None,             # Arguments of DiscriminatorBlock (e.g. freeze_layers).
                 mapping_kwargs=None,           # Arguments of the label MappingNetwork.
                 epilogue_kwargs=None,          # Arguments of the epilogue (e.g. mbstd_group_size).
                 seed=None,                     # Seed of the weight initialisation.
                 name='discriminator',
                 **kwargs):
        _check_common(img_resolution, img_channels)
        _check_positive_int(c_dim, 'c_dim', minimum=0)
        super().__init__(name=name, **kwargs)
        self._config = dict(img_resolution=int(img_resolution), img_channels=int(img_channels), c_dim=int(c_dim),
                            architecture=architecture, channel_base=channel_base, channel_max=channel_max,
                            num_fp16_res=num_fp16_res, conv_clamp=conv_clamp, cmap_dim=cmap_dim,
                            block_kwargs=dict(block_kwargs or {}), mapping_kwargs=dict(mapping_kwargs or {}),
                            epilogue_kwargs=dict(epilogue_kwargs or {}), seed=seed)
        self.img_resolution, self.img_channels, self.c_dim = int(img_resolution), int(img_channels), int(c_dim)
        self.net = stylegan2.DiscriminatorNetwork(name='net', **self._config)
        self.built = True

    def call(self, img, c=None):
        img = tf.convert_to_tensor(img, dtype='float32')
        expected = [None, self.img_resolution, self.img_resolution, self.img_channels]
        if img.shape.rank != 4 or any(e is not None and s != e for s, e in zip(img.shape, expected)):
            raise ValueError(f'img must have shape [N, {self.img_resolution}, {self.img_resolution}, '
                             f'{self.img_channels}] (NHWC), got {list(img.shape)}')
        return self.net(img, c)

    def reference_variables(self):
        """``{reference state-dict name: variable}`` for every parameter and buffer variable."""
        return reference_variables(self.net)

    def get_config(self):
        return {'name': self.name, **_plain(self._config)}
