"""StyleGAN2 synthesis network (skip architecture) and residual discriminator.

The discriminator is the one all configurations train with (StyleGAN2 and both
StyleGAN3 generators), as in the reference's ``train.py``.
"""

import numpy as np
import tensorflow as tf

from afgan_tf import filters as filters_lib
from afgan_tf import ops
from afgan_tf.layers import (FullyConnected, MappingNetwork, PrecisionMixin, RefLayer, check_precision,
                             check_resolution, check_synthesis_args, conv2d, fp16_resolution, modulated_conv2d,
                             normal_init, random_normal)

SQRT_HALF = float(np.sqrt(0.5))


def _seeds(seed, count):
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]


# ----------------------------------------------------------------------------
# Generator layers.

class SynthesisLayer(RefLayer):
    """Modulated 3x3 conv (optionally 2x upsampling), per-pixel noise, bias and leaky ReLU."""

    def __init__(self,
                 in_channels,               # Number of input channels.
                 out_channels,              # Number of output channels.
                 w_dim,                     # Intermediate latent (W) dimensionality.
                 resolution,                # Output resolution of this layer.
                 kernel_size=3,             # Convolution kernel size.
                 up=1,                      # Upsampling factor (1 or 2).
                 use_noise=True,            # Add per-pixel noise?
                 activation='lrelu',        # Activation function.
                 resample_filter=(1, 3, 3, 1),  # Low-pass filter used when upsampling.
                 conv_clamp=None,           # Clamp of the output, None = disable.
                 seed=None,                 # Seed of the initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.resolution, self.kernel_size, self.up = int(resolution), int(kernel_size), int(up)
        self.use_noise, self.activation, self.conv_clamp = bool(use_noise), activation, conv_clamp
        self.resample_filter_taps = list(resample_filter)
        self.seed = seed
        self.resample_filter = filters_lib.setup_filter(resample_filter)
        self.act_gain = ops.ACTIVATIONS[activation][2]
        rng = np.random.default_rng(seed)
        self.ref_child('affine', FullyConnected(w_dim, in_channels, bias_init=1, seed=int(rng.integers(2 ** 31)),
                                                name='affine'))
        self.ref_weight('weight', [out_channels, in_channels, kernel_size, kernel_size], normal_init(rng))
        if self.use_noise:
            self.ref_weight('noise_const', [resolution, resolution], normal_init(rng), trainable=False)
            self.ref_weight('noise_strength', [], 0.0)
        self.ref_weight('bias', [out_channels], 0.0)
        self.built = True

    def call(self, x, w, noise_mode='random', gain=1, noise_rng=None):
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, padding=self.kernel_size // 2, up=self.up,
                             resample_filter=self.resample_filter)
        if self.use_noise and noise_mode == 'random':
            shape = [tf.shape(x)[0], self.resolution, self.resolution, 1]
            noise = random_normal(noise_rng, shape, key=self.noise_const)
            x = x + tf.cast(noise * self.noise_strength, x.dtype)
        elif self.use_noise and noise_mode == 'const':
            x = x + tf.cast(self.noise_const * self.noise_strength, x.dtype)[tf.newaxis, :, :, tf.newaxis]
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def get_config(self):
        return {**super().get_config(), 'in_channels': self.in_channels, 'out_channels': self.out_channels,
                'w_dim': self.w_dim, 'resolution': self.resolution, 'kernel_size': self.kernel_size, 'up': self.up,
                'use_noise': self.use_noise, 'activation': self.activation,
                'resample_filter': self.resample_filter_taps, 'conv_clamp': self.conv_clamp, 'seed': self.seed}


class ToRGBLayer(RefLayer):
    """Modulated 1x1 conv to image channels, without demodulation."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.kernel_size, self.conv_clamp, self.seed = int(kernel_size), conv_clamp, seed
        rng = np.random.default_rng(seed)
        self.ref_child('affine', FullyConnected(w_dim, in_channels, bias_init=1, seed=int(rng.integers(2 ** 31)),
                                                name='affine'))
        self.ref_weight('weight', [out_channels, in_channels, kernel_size, kernel_size], normal_init(rng))
        self.ref_weight('bias', [out_channels], 0.0)
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size ** 2))
        self.built = True

    def call(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, padding=self.kernel_size // 2)
        return ops.bias_act(x, self.bias, clamp=self.conv_clamp)

    def get_config(self):
        return {**super().get_config(), 'in_channels': self.in_channels, 'out_channels': self.out_channels,
                'w_dim': self.w_dim, 'kernel_size': self.kernel_size, 'conv_clamp': self.conv_clamp,
                'seed': self.seed}


class SynthesisBlock(PrecisionMixin, RefLayer):
    """One resolution of the skip-architecture generator: [const | up-conv], conv, ToRGB."""

    def __init__(self,
                 in_channels,               # Number of input channels, 0 = first block (learned constant).
                 out_channels,              # Number of output channels.
                 w_dim,                     # Intermediate latent (W) dimensionality.
                 resolution,                # Resolution of this block.
                 img_channels,              # Number of output color channels.
                 is_last,                   # Is this the last block?
                 architecture='skip',       # Only 'skip' (the StyleGAN2 generator) is supported.
                 resample_filter=(1, 3, 3, 1),  # Low-pass filter for resampling.
                 conv_clamp=256,            # Clamp of conv outputs, None = disable.
                 use_noise=True,            # Per-pixel noise inputs?
                 seed=None,                 # Seed of the initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        if architecture != 'skip':
            raise ValueError(f"architecture must be 'skip' for the generator, got {architecture!r}")
        self.in_channels, self.out_channels, self.w_dim = int(in_channels), int(out_channels), int(w_dim)
        self.resolution, self.img_channels, self.is_last = int(resolution), int(img_channels), bool(is_last)
        self.architecture, self.conv_clamp, self.use_noise, self.seed = architecture, conv_clamp, use_noise, seed
        self.resample_filter_taps = list(resample_filter)
        self.resample_filter = filters_lib.setup_filter(resample_filter)
        seeds = _seeds(seed, 4)
        layer_kwargs = dict(w_dim=w_dim, resolution=resolution, resample_filter=resample_filter,
                            conv_clamp=conv_clamp, use_noise=use_noise)
        self.num_conv = 0
        if in_channels == 0:
            self.ref_weight('const', [out_channels, resolution, resolution],
                            normal_init(np.random.default_rng(seeds[0])))
        else:
            self.ref_child('conv0', SynthesisLayer(in_channels, out_channels, up=2, seed=seeds[1], name='conv0',
                                                   **layer_kwargs))
            self.num_conv += 1
        self.ref_child('conv1', SynthesisLayer(out_channels, out_channels, seed=seeds[2], name='conv1', **layer_kwargs))
        self.num_conv += 1
        self.ref_child('torgb', ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                           seed=seeds[3], name='torgb'))
        self.num_torgb = 1
        self.built = True

    def call(self, x, img, ws, noise_mode='random', noise_rng=None):
        if self.in_channels == 0:
            const = tf.transpose(self.const, [1, 2, 0])[tf.newaxis]
            x = self.cast_in(tf.tile(const, [tf.shape(ws)[0], 1, 1, 1]))
            x = self.conv1(x, ws[:, 0], noise_mode=noise_mode, noise_rng=noise_rng)
        else:
            x = self.conv0(self.cast_in(x), ws[:, 0], noise_mode=noise_mode, noise_rng=noise_rng)
            x = self.conv1(x, ws[:, 1], noise_mode=noise_mode, noise_rng=noise_rng)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = tf.cast(self.torgb(x, ws[:, self.num_conv]), 'float32')     # The image is kept in float32.
        img = y if img is None else img + y
        return x, img

    def get_config(self):
        return {**super().get_config(), 'in_channels': self.in_channels, 'out_channels': self.out_channels,
                'w_dim': self.w_dim, 'resolution': self.resolution, 'img_channels': self.img_channels,
                'is_last': self.is_last, 'architecture': self.architecture,
                'resample_filter': self.resample_filter_taps, 'conv_clamp': self.conv_clamp,
                'use_noise': self.use_noise, 'seed': self.seed}


class SynthesisNetwork(RefLayer):
    """StyleGAN2 synthesis network (skip architecture), blocks b4 ... b{img_resolution}."""

    def __init__(self,
                 w_dim,                     # Intermediate latent (W) dimensionality.
                 img_resolution,            # Output image resolution.
                 img_channels,              # Number of output color channels.
                 channel_base=32768,        # Overall multiplier for the number of channels.
                 channel_max=512,           # Maximum number of channels in any layer.
                 num_fp16_res=4,            # Blocks of the top resolutions that set_precision reduces.
                 architecture='skip',       # Generator architecture (only 'skip').
                 resample_filter=(1, 3, 3, 1),  # Low-pass filter for resampling.
                 conv_clamp=256,            # Clamp of conv outputs, None = disable.
                 use_noise=True,            # Per-pixel noise inputs?
                 seed=None,                 # Seed of the initialisation.
                 fused_modconv_default=True,  # Accepted for compatibility (modconv is always unfused here).
                 **kwargs):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        self.w_dim, self.img_resolution, self.img_channels = int(w_dim), int(img_resolution), int(img_channels)
        self.seed = seed
        self._config = dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
                            architecture=architecture, resample_filter=list(resample_filter),
                            conv_clamp=conv_clamp, use_noise=use_noise)
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        seeds = _seeds(seed, len(self.block_resolutions))
        self.num_ws = 0
        for res, block_seed in zip(self.block_resolutions, seeds):
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=res == img_resolution,
                                   architecture=architecture, resample_filter=resample_filter,
                                   conv_clamp=conv_clamp, use_noise=use_noise, seed=block_seed, name=f'b{res}')
            self.ref_child(f'b{res}', block)
            self.num_ws += block.num_conv
        self.num_ws += 1        # The last block's ToRGB.
        self.built = True

    def call(self, ws, transform=None, noise_mode='const', update_emas=False, impl='auto', noise_rng=None):
        del update_emas, impl       # No moving averages and no custom op in this network.
        if transform is not None:
            raise ValueError('transform is only supported by StyleGAN3 generators')
        ws = check_synthesis_args(ws, noise_mode, self.num_ws, self.w_dim)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            x, img = block(x, img, ws[:, w_idx: w_idx + block.num_conv + block.num_torgb], noise_mode=noise_mode,
                           noise_rng=noise_rng)
            w_idx += block.num_conv
        return img

    def style_layers(self):
        """[(NVIDIA's name, ws index, affine FullyConnected)] of every modulated layer, in ws order."""
        out, w_idx = [], 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            convs = (['conv0'] if block.in_channels else []) + ['conv1']
            for k, name in enumerate(convs):
                out.append((f'synthesis.b{res}.{name}', w_idx + k, getattr(block, name).affine))
            out.append((f'synthesis.b{res}.torgb', w_idx + block.num_conv, block.torgb.affine))
            w_idx += block.num_conv
        return out

    def set_precision(self, dtype='float32'):
        """Runs the blocks NVIDIA runs in float16 (the top num_fp16_res resolutions, >= 8) in ``dtype``."""
        check_precision(dtype)
        lowest = fp16_resolution(self.img_resolution, self._config.get('num_fp16_res') or 0)
        reduced = [res for res in self.block_resolutions if res >= lowest and self._config.get('num_fp16_res')]
        for res in self.block_resolutions:
            getattr(self, f'b{res}').compute_dtype_name = dtype if res in reduced else 'float32'
        return [f'b{res}' for res in reduced] if dtype != 'float32' else []

    def get_config(self):
        return {**super().get_config(), 'w_dim': self.w_dim, 'img_resolution': self.img_resolution,
                'img_channels': self.img_channels, 'seed': self.seed, **self._config}


# ----------------------------------------------------------------------------
# Discriminator.

class Conv2dLayer(RefLayer):
    """Conv with equalised learning rate, optional 2x FIR downsampling, bias, activation and clamp."""

    def __init__(self,
                 in_channels,               # Number of input channels.
                 out_channels,              # Number of output channels.
                 kernel_size,               # Kernel width and height.
                 use_bias=True,             # Add a bias?
                 activation='linear',       # Activation function.
                 down=1,                    # Downsampling factor (1 or 2).
                 resample_filter=(1, 3, 3, 1),  # Low-pass filter used when downsampling.
                 conv_clamp=None,           # Clamp of the output, None = disable.
                 seed=None,                 # Seed of the initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), int(kernel_size)
        self.use_bias, self.activation, self.down, self.conv_clamp = bool(use_bias), activation, int(down), conv_clamp
        self.resample_filter_taps = list(resample_filter)
        self.resample_filter = filters_lib.setup_filter(resample_filter)
        self.seed = seed
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size ** 2))
        self.act_gain = ops.ACTIVATIONS[activation][2]
        rng = np.random.default_rng(seed)
        self.ref_weight('weight', [out_channels, in_channels, kernel_size, kernel_size], normal_init(rng))
        if self.use_bias:
            self.ref_weight('bias', [out_channels], 0.0)
        self.built = True

    def call(self, x, gain=1):
        w = self.weight * self.weight_gain
        pad = self.kernel_size // 2
        if self.down > 1:
            fw, fh = ops.filter_size(self.resample_filter)
            d = self.down
            padding = [pad + (fw - d + 1) // 2, pad + (fw - d) // 2, pad + (fh - d + 1) // 2, pad + (fh - d) // 2]
            if self.kernel_size == 1:
                x = conv2d(ops.upfirdn2d(x, self.resample_filter, down=d, padding=padding), w)
            else:
                x = conv2d(ops.upfirdn2d(x, self.resample_filter, padding=padding), w, stride=d)
        else:
            x = conv2d(x, w, padding=pad)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias if self.use_bias else None
        return ops.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def get_config(self):
        return {**super().get_config(), 'in_channels': self.in_channels, 'out_channels': self.out_channels,
                'kernel_size': self.kernel_size, 'use_bias': self.use_bias, 'activation': self.activation,
                'down': self.down, 'resample_filter': self.resample_filter_taps, 'conv_clamp': self.conv_clamp,
                'seed': self.seed}


class DiscriminatorBlock(PrecisionMixin, RefLayer):
    """Residual discriminator block: [fromrgb], conv0, conv1 (down 2), 1x1 skip (down 2)."""

    def __init__(self,
                 in_channels,               # Number of input channels, 0 = first block.
                 tmp_channels,              # Number of intermediate channels.
                 out_channels,              # Number of output channels.
                 resolution,                # Resolution of this block.
                 img_channels,              # Number of input color channels.
                 first_layer_idx=0,         # Index of the first layer (for freeze_layers).
                 architecture='resnet',     # Only 'resnet' (the StyleGAN2 discriminator) is supported.
                 activation='lrelu',        # Activation function.
                 resample_filter=(1, 3, 3, 1),  # Low-pass filter for resampling.
                 conv_clamp=None,           # Clamp of conv outputs, None = disable.
                 freeze_layers=0,           # Freeze-D: number of leading layers that are not trained.
                 seed=None,                 # Seed of the initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        if architecture != 'resnet':
            raise ValueError(f"architecture must be 'resnet' for the discriminator, got {architecture!r}")
        self.in_channels, self.tmp_channels, self.out_channels = int(in_channels), int(tmp_channels), int(out_channels)
        self.resolution, self.img_channels, self.first_layer_idx = int(resolution), int(img_channels), first_layer_idx
        self.architecture, self.activation, self.conv_clamp = architecture, activation, conv_clamp
        self.resample_filter_taps, self.freeze_layers, self.seed = list(resample_filter), freeze_layers, seed
        seeds = _seeds(seed, 4)
        self.num_layers = 0

        def add(name, layer):
            layer.trainable = (first_layer_idx + self.num_layers) >= freeze_layers
            self.num_layers += 1
            self.ref_child(name, layer)

        common = dict(activation=activation, conv_clamp=conv_clamp)
        if in_channels == 0:
            add('fromrgb', Conv2dLayer(img_channels, tmp_channels, 1, seed=seeds[0], name='fromrgb', **common))
        add('conv0', Conv2dLayer(tmp_channels, tmp_channels, 3, seed=seeds[1], name='conv0', **common))
        add('conv1', Conv2dLayer(tmp_channels, out_channels, 3, down=2, resample_filter=resample_filter,
                                 seed=seeds[2], name='conv1', **common))
        add('skip', Conv2dLayer(tmp_channels, out_channels, 1, use_bias=False, down=2,
                                resample_filter=resample_filter, seed=seeds[3], name='skip'))
        self.built = True

    def call(self, x, img):
        if self.in_channels == 0:
            x = self.fromrgb(self.cast_in(img))
        x = self.cast_in(x)
        y = self.skip(x, gain=SQRT_HALF)
        x = self.conv0(x)
        x = self.conv1(x, gain=SQRT_HALF)
        return y + x

    def get_config(self):
        return {**super().get_config(), 'in_channels': self.in_channels, 'tmp_channels': self.tmp_channels,
                'out_channels': self.out_channels, 'resolution': self.resolution, 'img_channels': self.img_channels,
                'first_layer_idx': self.first_layer_idx, 'architecture': self.architecture,
                'activation': self.activation, 'resample_filter': self.resample_filter_taps,
                'conv_clamp': self.conv_clamp, 'freeze_layers': self.freeze_layers, 'seed': self.seed}


def minibatch_stddev(x, group_size=4, num_channels=1):
    """Appends the per-group standard deviation features (StyleGAN2's minibatch stddev) to NHWC ``x``.

    Samples ``i`` and ``i + n`` (n = batch / group) share a group, as in the reference.
    """
    _, h, w, c = x.shape
    batch = tf.shape(x)[0]
    g = batch if group_size is None else tf.minimum(group_size, batch)
    tf.debugging.assert_equal(batch % g, 0, message=f'batch size must be divisible by the minibatch-stddev '
                                                     f'group size ({group_size})')
    f = num_channels
    y = tf.reshape(x, [g, -1, h, w, f, c // f])                 # [G, n, H, W, F, c]
    y = y - tf.reduce_mean(y, axis=0)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)   # [n, H, W, F, c]
    y = tf.reduce_mean(y, axis=[1, 2, 4])                      # [n, F]
    y = tf.tile(y, [g, 1])                                     # [N, F]
    y = tf.tile(y[:, tf.newaxis, tf.newaxis, :], [1, h, w, 1])
    return tf.concat([x, y], axis=-1)


class DiscriminatorEpilogue(RefLayer):
    """Minibatch stddev, 3x3 conv, fully connected, output (optionally projected on the label map)."""

    def __init__(self,
                 in_channels,               # Number of input channels.
                 cmap_dim,                  # Dimensionality of the mapped label, 0 = no label.
                 resolution,                # Resolution of this block (4).
                 img_channels,              # Number of input color channels.
                 architecture='resnet',     # Discriminator architecture.
                 mbstd_group_size=4,        # Group size of minibatch stddev, None = whole minibatch.
                 mbstd_num_channels=1,      # Number of minibatch stddev features, 0 = disable.
                 activation='lrelu',        # Activation function.
                 conv_clamp=None,           # Clamp of conv outputs, None = disable.
                 seed=None,                 # Seed of the initialisation.
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels, self.cmap_dim, self.resolution = int(in_channels), int(cmap_dim), int(resolution)
        self.img_channels, self.architecture, self.activation = int(img_channels), architecture, activation
        self.mbstd_group_size, self.mbstd_num_channels = mbstd_group_size, int(mbstd_num_channels)
        self.conv_clamp, self.seed = conv_clamp, seed
        seeds = _seeds(seed, 3)
        self.ref_child('conv', Conv2dLayer(in_channels + self.mbstd_num_channels, in_channels, 3,
                                           activation=activation, conv_clamp=conv_clamp, seed=seeds[0], name='conv'))
        self.ref_child('fc', FullyConnected(in_channels * resolution ** 2, in_channels, activation=activation,
                                            seed=seeds[1], name='fc'))
        self.ref_child('out', FullyConnected(in_channels, 1 if cmap_dim == 0 else cmap_dim, seed=seeds[2], name='out'))
        self.built = True

    def call(self, x, cmap=None):
        x = tf.cast(x, 'float32')           # The epilogue always runs in float32.
        if self.mbstd_num_channels > 0:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = self.conv(x)
        x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, self.in_channels * self.resolution ** 2])  # NCHW order.
        x = self.out(self.fc(x))
        if self.cmap_dim > 0:
            x = tf.reduce_sum(x * cmap, axis=1, keepdims=True) * float(1 / np.sqrt(self.cmap_dim))
        return x

    def get_config(self):
        return {**super().get_config(), 'in_channels': self.in_channels, 'cmap_dim': self.cmap_dim,
                'resolution': self.resolution, 'img_channels': self.img_channels, 'architecture': self.architecture,
                'mbstd_group_size': self.mbstd_group_size, 'mbstd_num_channels': self.mbstd_num_channels,
                'activation': self.activation, 'conv_clamp': self.conv_clamp, 'seed': self.seed}


class DiscriminatorNetwork(RefLayer):
    """The StyleGAN2 residual discriminator body: blocks b{res} ... b8 and the b4 epilogue."""

    def __init__(self, c_dim, img_resolution, img_channels, architecture='resnet', channel_base=32768,
                 channel_max=512, num_fp16_res=4, conv_clamp=256, cmap_dim=None, block_kwargs=None,
                 mapping_kwargs=None, epilogue_kwargs=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_resolution(img_resolution)
        self.c_dim, self.img_resolution, self.img_channels = int(c_dim), int(img_resolution), int(img_channels)
        self.num_fp16_res = int(num_fp16_res or 0)
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        cmap_dim = channels[4] if cmap_dim is None else cmap_dim
        cmap_dim = 0 if c_dim == 0 else cmap_dim
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        seeds = _seeds(seed, len(self.block_resolutions) + 2)
        layer_idx = 0
        for res, block_seed in zip(self.block_resolutions, seeds):
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, first_layer_idx=layer_idx, seed=block_seed, name=f'b{res}',
                                       **(block_kwargs or {}), **common)
            self.ref_child(f'b{res}', block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.ref_child('mapping', MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None,
                                                     w_avg_beta=None, seed=seeds[-2], name='mapping',
                                                     **{'num_layers': 8, **(mapping_kwargs or {})}))
        self.ref_child('b4', DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, seed=seeds[-1],
                                                   name='b4', **(epilogue_kwargs or {}), **common))
        self.built = True

    def call(self, img, c=None):
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f'b{res}')(x, img)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f'c is required: this discriminator is conditional (c_dim={self.c_dim})')
            cmap = self.mapping(None, c)
        return self.b4(x, cmap)

    def set_precision(self, dtype='float32'):
        """Runs the blocks NVIDIA runs in float16 (the top num_fp16_res resolutions, >= 8) in ``dtype``."""
        check_precision(dtype)
        lowest = fp16_resolution(self.img_resolution, self.num_fp16_res)
        reduced = [res for res in self.block_resolutions if res >= lowest and self.num_fp16_res and dtype != 'float32']
        for res in self.block_resolutions:
            getattr(self, f'b{res}').compute_dtype_name = dtype if res in reduced else 'float32'
        return [f'b{res}' for res in reduced]
