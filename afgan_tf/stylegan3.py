"""StyleGAN3 synthesis network ("Alias-Free Generative Adversarial Networks")."""

import numpy as np
import tensorflow as tf

from afgan_tf import filters as filters_lib
from afgan_tf import ops
from afgan_tf.layers import (FullyConnected, PrecisionMixin, RefLayer, check_precision, check_synthesis_args,
                             modulated_conv2d, normal_init)
from afgan_tf.stylegan3_layers import stylegan3_layer_specs


def _as_transform(transform):
    """Returns the user transform as ``[3, 3]`` or ``[N, 3, 3]`` float32 (None stays None)."""
    if transform is None:
        return None
    transform = tf.convert_to_tensor(transform, dtype='float32')
    if tuple(transform.shape[-2:]) != (3, 3) or transform.shape.rank not in (2, 3):
        raise ValueError(f'transform must have shape [3, 3] or [N, 3, 3], got {list(transform.shape)}')
    return transform


class SynthesisInput(RefLayer):
    """Fourier features on a fixed grid, rotated/translated by an affine of w and a user transform."""

    def __init__(self,
                 w_dim,             # Intermediate latent (W) dimensionality.
                 channels,          # Number of output channels (Fourier features).
                 size,              # Output spatial size (square).
                 sampling_rate,     # Output sampling rate.
                 bandwidth,         # Output bandwidth (cutoff of the first layer).
                 seed=None,         # Seed of frequencies, phases and weights.
                 **kwargs):
        super().__init__(**kwargs)
        self.w_dim, self.channels, self.size = int(w_dim), int(channels), int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        self.seed = seed
        rng = np.random.default_rng(seed)
        # Frequencies drawn uniformly-ish from a disc of radius `bandwidth`, as the reference does.
        freqs = rng.standard_normal([self.channels, 2])
        radii = np.sqrt(np.sum(freqs ** 2, axis=1, keepdims=True))
        freqs = freqs / (radii * np.exp(radii ** 2) ** 0.25) * self.bandwidth
        phases = rng.uniform(size=[self.channels]) - 0.5
        self.ref_weight('weight', [self.channels, self.channels], normal_init(rng))
        self.ref_child('affine', FullyConnected(self.w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0], name='affine'))
        self.ref_weight('freqs', [self.channels, 2], freqs, trainable=False)
        self.ref_weight('phases', [self.channels], phases, trainable=False)
        # Sample grid: pixel centres in units of the sampling rate, as affine_grid(align_corners=False).
        coords = (np.arange(self.size) + 0.5 - self.size / 2) / self.sampling_rate
        self._grid = np.stack(np.meshgrid(coords, coords), axis=-1).astype(np.float32)   # [H, W, (x, y)]
        self.built = True

    def call(self, w, transform=None):
        batch = tf.shape(w)[0]
        t = self.affine(w)                                                          # (r_c, r_s, t_x, t_y)
        t = t / tf.norm(t[:, :2], axis=1, keepdims=True)
        zero, one = tf.zeros_like(t[:, 0]), tf.ones_like(t[:, 0])
        m_r = tf.reshape(tf.stack([t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], 1), [-1, 3, 3])
        m_t = tf.reshape(tf.stack([one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], 1), [-1, 3, 3])
        transforms = tf.matmul(m_r, m_t)
        transform = _as_transform(transform)
        if transform is not None:
            transforms = tf.matmul(transforms, tf.broadcast_to(transform, [batch, 3, 3]))

        freqs = tf.matmul(tf.broadcast_to(self.freqs, [batch, self.channels, 2]), transforms[:, :2, :2])  # [N, C, 2]
        phases = self.phases + tf.linalg.matvec(tf.broadcast_to(self.freqs, [batch, self.channels, 2]),
                                                transforms[:, :2, 2])                                   # [N, C]
        # Dampen frequencies pushed out of band by the user transform.
        amplitudes = tf.clip_by_value(
            1 - (tf.norm(freqs, axis=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth), 0, 1)

        x = tf.einsum('hwk,nck->nhwc', self._grid, freqs)
        x = x + phases[:, tf.newaxis, tf.newaxis, :]
        x = tf.sin(x * (np.pi * 2)) * amplitudes[:, tf.newaxis, tf.newaxis, :]
        return tf.matmul(x, self.weight * float(1 / np.sqrt(self.channels)), transpose_b=True)

    def get_config(self):
        return {**super().get_config(), 'w_dim': self.w_dim, 'channels': self.channels, 'size': self.size,
                'sampling_rate': self.sampling_rate, 'bandwidth': self.bandwidth, 'seed': self.seed}


class SynthesisLayer(PrecisionMixin, RefLayer):
    """Modulated conv + filtered leaky ReLU (upsample, bias, lrelu, clamp, low-pass, downsample)."""

    def __init__(self,
                 w_dim,                     # Intermediate latent (W) dimensionality.
                 spec,                      # This layer's row of `stylegan3_layer_specs` (a dict).
                 magnitude_ema_beta=0.999,  # Decay of the moving average of input magnitudes.
                 seed=None,                 # Seed of the weight initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False       # May call the filtered_lrelu custom op, which XLA cannot compile.
        self.w_dim = int(w_dim)
        self.spec = dict(spec)
        self.magnitude_ema_beta = float(magnitude_ema_beta)
        self.seed = seed
        s = self.spec
        self.is_torgb = s['is_torgb']
        self.in_channels, self.out_channels = s['in_channels'], s['out_channels']
        self.conv_kernel = s['conv_kernel']
        rng = np.random.default_rng(seed)
        self.ref_child('affine', FullyConnected(self.w_dim, self.in_channels, bias_init=1,
                                                seed=int(rng.integers(2 ** 31)), name='affine'))
        self.ref_weight('weight', [self.out_channels, self.in_channels, self.conv_kernel, self.conv_kernel],
                        normal_init(rng))
        self.ref_weight('bias', [self.out_channels], 0.0)
        self.ref_weight('magnitude_ema', [], 1.0, trainable=False)
        self.up_filter = filters_lib.design_lowpass_filter(
            numtaps=s['up_taps'], cutoff=s['in_cutoff'], width=s['in_half_width'] * 2, fs=s['tmp_sampling_rate'])
        self.down_filter = filters_lib.design_lowpass_filter(
            numtaps=s['down_taps'], cutoff=s['out_cutoff'], width=s['out_half_width'] * 2, fs=s['tmp_sampling_rate'],
            radial=s['down_radial'])
        self.gain = 1.0 if self.is_torgb else float(np.sqrt(2))
        self.slope = 1.0 if self.is_torgb else 0.2
        self.built = True

    def call(self, x, w, update_emas=False, impl='auto'):
        if update_emas:
            magnitude = tf.reduce_mean(tf.square(tf.cast(x, 'float32')))
            self.magnitude_ema.assign(magnitude + (self.magnitude_ema - magnitude) * self.magnitude_ema_beta)
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * float(1 / np.sqrt(self.in_channels * self.conv_kernel ** 2))
        x = self.cast_in(x)
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, padding=self.conv_kernel - 1,
                             input_gain=tf.math.rsqrt(self.magnitude_ema), prenormalize=True)
        s = self.spec
        return ops.filtered_lrelu(x, fu=self.up_filter, fd=self.down_filter, b=self.bias, up=s['up_factor'],
                                  down=s['down_factor'], padding=s['padding'], gain=self.gain, slope=self.slope,
                                  clamp=s['conv_clamp'], impl=impl)

    def get_config(self):
        return {**super().get_config(), 'w_dim': self.w_dim, 'spec': self.spec,
                'magnitude_ema_beta': self.magnitude_ema_beta, 'seed': self.seed}


class SynthesisNetwork(RefLayer):
    """StyleGAN3 synthesis: Fourier-feature input, `num_layers` synthesis layers and ToRGB."""

    def __init__(self,
                 w_dim,                     # Intermediate latent (W) dimensionality.
                 img_resolution,            # Output image resolution.
                 img_channels,              # Number of output color channels.
                 channel_base=32768,        # Overall multiplier for the number of channels.
                 channel_max=512,           # Maximum number of channels in any layer.
                 num_layers=14,             # Number of layers, excluding Fourier features and ToRGB.
                 num_critical=2,            # Number of critically sampled layers at the end.
                 first_cutoff=2,            # Cutoff frequency of the first layer.
                 first_stopband=2 ** 2.1,   # Minimum stopband of the first layer.
                 last_stopband_rel=2 ** 0.3,  # Minimum stopband of the last layer, relative to its cutoff.
                 margin_size=10,            # Number of additional pixels outside the image.
                 output_scale=0.25,         # Scale factor of the output image.
                 num_fp16_res=4,            # Layers of the top resolutions that set_precision reduces.
                 conv_kernel=3,             # Convolution kernel size (1 for StyleGAN3-R).
                 filter_size=6,             # Low-pass filter size relative to the lower rate.
                 lrelu_upsampling=2,        # Relative sampling rate of the leaky ReLU.
                 use_radial_filters=False,  # Radially symmetric downsampling filters (StyleGAN3-R).
                 conv_clamp=256,            # Clamp of the layer outputs, None = disable.
                 magnitude_ema_beta=0.999,  # Decay of the moving average of input magnitudes.
                 seed=None,                 # Seed of the initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False
        self.w_dim, self.img_resolution, self.img_channels = int(w_dim), int(img_resolution), int(img_channels)
        self.output_scale = float(output_scale)
        self.seed = seed
        spec_kwargs = dict(channel_base=channel_base, channel_max=channel_max, num_layers=num_layers,
                           num_critical=num_critical, first_cutoff=first_cutoff, first_stopband=first_stopband,
                           last_stopband_rel=last_stopband_rel, margin_size=margin_size, conv_kernel=conv_kernel,
                           filter_size=filter_size, lrelu_upsampling=lrelu_upsampling,
                           use_radial_filters=use_radial_filters, conv_clamp=conv_clamp)
        self._config = dict(spec_kwargs, output_scale=output_scale, num_fp16_res=num_fp16_res,
                            magnitude_ema_beta=magnitude_ema_beta)
        self.spec = stylegan3_layer_specs(self.img_resolution, self.img_channels, **spec_kwargs)
        self.num_ws = self.spec['num_ws']
        seeds = np.random.SeedSequence(seed).generate_state(len(self.spec['layers']) + 1)
        inp = self.spec['input']
        self.ref_child('input', SynthesisInput(self.w_dim, inp['channels'], inp['size'][0], inp['sampling_rate'],
                                               inp['bandwidth'], seed=int(seeds[-1]), name='input'),
                       attr='input_layer')
        self.layer_names = []
        for idx, layer_spec in enumerate(self.spec['layers']):
            name = layer_spec['name']
            self.ref_child(name, SynthesisLayer(self.w_dim, layer_spec, magnitude_ema_beta=magnitude_ema_beta,
                                                seed=int(seeds[idx]), name=name))
            self.layer_names.append(name)
        self.built = True

    def call(self, ws, transform=None, noise_mode='const', update_emas=False, impl='auto', return_activations=False,
             noise_rng=None):
        del noise_rng               # No noise inputs in StyleGAN3.
        ws = check_synthesis_args(ws, noise_mode, self.num_ws, self.w_dim)
        x = self.input_layer(ws[:, 0], transform=transform)
        activations = {'input': x}
        for idx, name in enumerate(self.layer_names):
            x = getattr(self, name)(x, ws[:, idx + 1], update_emas=update_emas, impl=impl)
            activations[name] = x
        x = tf.cast(x, 'float32')
        if self.output_scale != 1:
            x = x * self.output_scale
        return (x, activations) if return_activations else x

    def style_layers(self):
        """[(NVIDIA's name, ws index, affine FullyConnected)] of every layer modulated by a w (the input's
        affine sets its transform, not a style: left out)."""
        return [(f'synthesis.{name}', idx + 1, getattr(self, name).affine) for idx, name in enumerate(self.layer_names)]

    def set_precision(self, dtype='float32'):
        """Runs the layers NVIDIA runs in float16 (output sampling rate * 2^num_fp16_res > resolution) in
        ``dtype`` ('float16' / 'bfloat16'), the others in float32; 'float32': all of them."""
        check_precision(dtype)
        scale = 2 ** int(self._config.get('num_fp16_res') or 0)
        for name in self.layer_names:
            layer = getattr(self, name)
            reduced = layer.spec['out_sampling_rate'] * scale > self.img_resolution
            layer.compute_dtype_name = dtype if reduced else 'float32'
        return [name for name in self.layer_names if getattr(self, name).compute_dtype_name != 'float32']

    def get_config(self):
        return {**super().get_config(), 'w_dim': self.w_dim, 'img_resolution': self.img_resolution,
                'img_channels': self.img_channels, 'seed': self.seed, **self._config}
