"""Generator and discriminator models, and the architecture presets (as data).

A preset is one ``Preset`` record: everything the project knows about an architecture. The
models, the training loop, NVIDIA's importer and every tool read it; adding an architecture
means adding a record (``register_preset``) and, if it needs one, its synthesis network.

The interface a synthesis network provides (``stylegan3.SynthesisNetwork``,
``stylegan2.SynthesisNetwork``):

* ``__init__(w_dim, img_resolution, img_channels, seed, name, **synthesis_kwargs)``;
* ``num_ws``: how many ws ``call`` takes;
* ``call(ws, transform=None, noise_mode='const', update_emas=False, impl='auto', noise_rng=None)``:
  ``ws`` float32 [N, num_ws, w_dim] -> images float32 [N, img_resolution, img_resolution,
  img_channels], NHWC, about [-1, 1]. ``transform`` [3, 3] or [N, 3, 3]: the inverse output
  transform (only where ``accepts_transform``; others raise ValueError). ``noise_mode``
  'random' / 'const' / 'none' and ``noise_rng`` (for the random noise: a ``tf.random.Generator`` or a
  draw function ``fn(shape, key)``, see ``layers.random_normal``)
  matter only where ``has_noise``. ``update_emas`` updates moving averages (training).
  ``impl`` 'auto' / 'ref' / 'custom' chooses the filtered_lrelu implementation;
* ``reference_variables()`` through ``layers.reference_variables``: NVIDIA's state-dict names;
* ``style_layers()``: ``[(NVIDIA's layer name, ws index, affine layer)]`` of the layers a w modulates
  (latent directions, ``afgan_tf.directions``);
* ``get_config()`` (Keras).
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf
import keras

from afgan_tf import stylegan2, stylegan3
from afgan_tf.layers import MappingNetwork, check_resolution, reference_variables


@dataclasses.dataclass(frozen=True)
class Preset:
    """One architecture: model, NVIDIA interop, capabilities and the training defaults of NVIDIA's train.py."""

    name: str                               # The --cfg name ('stylegan3-t', ...).
    synthesis: type                         # Synthesis network class (see the module docstring).
    mapping_kwargs: dict                    # MappingNetwork defaults (num_layers, ...).
    synthesis_kwargs: dict                  # Synthesis defaults beyond the class's own.
    # NVIDIA interop: its constructor's defaults where they differ, and how to recognise the architecture
    # in a pickle (the synthesis submodule it has, and any of these G_kwargs subsets).
    reference_module: str = 'input'         # A submodule name of NVIDIA's synthesis network.
    reference_defaults: dict = dataclasses.field(default_factory=dict)
    reference_match: tuple = ()             # Alternatives ({kwarg: value}); () = the family's fallback.
    # Capabilities.
    accepts_transform: bool = False         # synthesis(transform=...) translates / rotates the output.
    has_noise: bool = False                 # Per-pixel noise inputs (noise_mode, noise_rng).
    supports_jit: bool = True               # XLA-compilable (no custom op).
    # Training defaults (NVIDIA's train.py for this config).
    channel_multiplier: int = 1             # --cbase / --cmax are multiplied by this (StyleGAN3-R: 2).
    G_lr: float = 0.0025
    D_lr: float = 0.002
    G_reg_interval: int = None              # Lazy regularisation interval of G (path length), None = none.
    D_reg_interval: int = 16                # Lazy R1 interval.
    style_mixing_prob: float = 0.0
    pl_weight: float = 0.0                  # Path-length regularisation weight.
    blur_init_sigma: float = 0.0            # Blur of D's inputs at the start.
    blur_fade_kimg_per_batch: float = 0.0   # The blur fades over batch * this kimg (NVIDIA: 200 / 32).
    magnitude_ema: bool = False             # Has magnitude_ema_beta (set from the batch size).


PRESETS = {}


def register_preset(preset):
    """Adds (or replaces) an architecture; returns it."""
    if not isinstance(preset, Preset):
        raise TypeError(f'preset must be a Preset, got {type(preset).__name__}')
    PRESETS[preset.name] = preset
    return preset


def get_preset(name):
    """The record of an architecture name; ValueError listing the known ones otherwise."""
    if name not in PRESETS:
        raise ValueError(f'architecture must be one of {sorted(PRESETS)}, got {name!r}')
    return PRESETS[name]


_STYLEGAN3 = dict(synthesis=stylegan3.SynthesisNetwork, mapping_kwargs=dict(num_layers=2), reference_module='input',
                  reference_defaults=dict(channel_base=32768, channel_max=512, conv_kernel=3,
                                          use_radial_filters=False),
                  accepts_transform=True, supports_jit=False, magnitude_ema=True)
register_preset(Preset(name='stylegan3-t', synthesis_kwargs=dict(), **_STYLEGAN3))
register_preset(Preset(name='stylegan3-r', synthesis_kwargs=dict(conv_kernel=1, use_radial_filters=True,
                                                                 channel_base=65536, channel_max=1024),
                       reference_match=({'use_radial_filters': True}, {'conv_kernel': 1}), channel_multiplier=2,
                       blur_init_sigma=10.0, blur_fade_kimg_per_batch=200 / 32, **_STYLEGAN3))
register_preset(Preset(name='stylegan2', synthesis=stylegan2.SynthesisNetwork, mapping_kwargs=dict(num_layers=8),
                       synthesis_kwargs=dict(), reference_module='b4', has_noise=True, G_lr=0.002,
                       G_reg_interval=4, style_mixing_prob=0.9, pl_weight=2.0))


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
        preset = get_preset(architecture)
        _check_common(img_resolution, img_channels)
        _check_positive_int(z_dim, 'z_dim', minimum=0 if c_dim else 1)
        _check_positive_int(w_dim, 'w_dim')
        _check_positive_int(c_dim, 'c_dim', minimum=0)
        dtype = synthesis_kwargs.pop('dtype', None)
        trainable = synthesis_kwargs.pop('trainable', True)
        super().__init__(name=name, dtype=dtype, trainable=trainable)
        self.architecture, self.preset = architecture, preset
        self.z_dim, self.w_dim, self.c_dim = int(z_dim), int(w_dim), int(c_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.seed = seed
        self.mapping_kwargs = {**preset.mapping_kwargs, **(mapping_kwargs or {})}
        self.synthesis_kwargs = {**preset.synthesis_kwargs, **synthesis_kwargs}
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(2)]
        self.synthesis = preset.synthesis(
            w_dim=self.w_dim, img_resolution=self.img_resolution, img_channels=self.img_channels,
            seed=seeds[0], name='synthesis', **self.synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                      seed=seeds[1], name='mapping', **self.mapping_kwargs)
        self.supports_jit = preset.supports_jit
        self.built = True

    def call(self, z, c=None, truncation_psi=1, truncation_cutoff=None, transform=None, noise_mode='const',
             update_emas=False, impl='auto'):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, transform=transform, noise_mode=noise_mode, update_emas=update_emas, impl=impl)

    def reference_variables(self):
        """``{reference state-dict name: variable}`` for every parameter and buffer variable."""
        return {**reference_variables(self.mapping, 'mapping.'), **reference_variables(self.synthesis, 'synthesis.')}

    def set_precision(self, dtype='float32'):
        """Computes the layers of the top ``num_fp16_res`` resolutions in ``dtype`` ('float16' or 'bfloat16'),
        as NVIDIA's float16 path does; 'float32' (the default) computes everything in float32. Weights
        stay float32; the output is float32. A run-time setting (call before tracing), not part of the
        config. Returns the names of the reduced layers."""
        return self.synthesis.set_precision(dtype)

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
                 num_fp16_res=4,                # Blocks of the top resolutions that set_precision reduces.
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

    def set_precision(self, dtype='float32'):
        """Computes the blocks of the top ``num_fp16_res`` resolutions in ``dtype`` (see Generator)."""
        return self.net.set_precision(dtype)

    def get_config(self):
        return {'name': self.name, **_plain(self._config)}
