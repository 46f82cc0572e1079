"""Projection of an image into W / W+ (StyleGAN2 paper, section 5), for StyleGAN2 and StyleGAN3.

The schedule is the paper's (as NVIDIA's StyleGAN2-ADA ``projector.py``): start from ``w_avg``;
Adam (0.9, 0.999) with a learning rate ramped up over the first 5% and down (cosine) over the
last 25% of the steps; Gaussian noise of std ``w_std * 0.05 * max(0, 1 - t / 0.75)^2`` added to
w; for StyleGAN2 the per-layer noise inputs are optimised too, with the multi-scale
autocorrelation penalty (weight 1e5) and renormalised to zero mean / unit variance after every
step. StyleGAN3 generators keep their input transform at identity (or ``transform``).

Distance: ``Vgg16Distance`` (LPIPS-style: unit-normalised VGG16 conv features, needs the user's
VGG16 file) or, without it, ``InceptionDistance``: the standard FID Inception's mixed_2 / mixed_7 /
mixed_10 feature maps (three scales, unit-normalised per pixel) plus a pixel MSE term.
"""

import time

import numpy as np
import tensorflow as tf


class InceptionDistance:
    """Multi-scale FID-Inception feature distance + ``pixel_weight`` * pixel MSE (images in [0, 255])."""

    name = 'inception-multiscale+pixel'
    LAYERS = ('mixed_2.concat', 'mixed_7.concat', 'mixed_10.concat')

    def __init__(self, inception_path=None, size=299, pixel_weight=1000.0, log=print):
        from afgan_tf.metrics import inception
        base = inception.load_fid_inception(inception_path, log=log)
        self.model = self._at_size(base, size)
        self.size, self.pixel_weight = int(size), float(pixel_weight)
        self._preprocess = inception.preprocess_images

    def _at_size(self, base, size):
        """The multi-scale feature maps of ``base``'s weights on a ``size`` x ``size`` input."""
        import keras
        from afgan_tf.metrics import inception
        layers = {}

        def conv(name):
            src = base.get_layer(name)
            layers[name] = inception.ConvBN(src.filters, src.kernel_size, src.strides, src.padding, name=name)
            return layers[name]
        clone = inception._inception_graph(conv, input_size=size)
        for name, layer in layers.items():
            layer.kernel.assign(base.get_layer(name).kernel)
            layer.bias.assign(base.get_layer(name).bias)
        return keras.Model(clone.inputs, [clone.get_layer(n).output for n in self.LAYERS])

    def features(self, images):
        feats = self.model(self._preprocess(images, size=self.size), training=False)
        return [f / (tf.norm(f, axis=-1, keepdims=True) + 1e-10) for f in feats] + [images / 127.5 - 1]

    def distance(self, target, synth):
        """Per image: sum over scales of the mean squared distance of normalised features, + pixel MSE."""
        total = 0.0
        for i, (a, b) in enumerate(zip(target, synth)):
            weight = self.pixel_weight if i == len(self.LAYERS) else 1.0
            total += weight * tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3]) * (1.0 if i == len(self.LAYERS)
                                                                                 else tf.cast(tf.shape(a)[-1], tf.float32))
        return total


class Vgg16Distance:
    """LPIPS-style distance on VGG16 (user-supplied Keras weights file)."""

    name = 'vgg16-lpips'

    def __init__(self, path):
        from afgan_tf.metrics.vgg16 import Vgg16Features
        self.vgg = Vgg16Features(path)

    def features(self, images):
        return self.vgg.lpips_features(images, size=256 if images.shape[1] > 256 else None)

    def distance(self, target, synth):
        return tf.add_n([tf.reduce_sum(tf.reduce_mean(tf.square(a - b), axis=[1, 2]), axis=-1)
                         for a, b in zip(target, synth)])


def noise_regularization(noise_bufs):
    """The StyleGAN2 projector's penalty: squared autocorrelation at shifts of 1 pixel, at every scale >= 8."""
    reg = 0.0
    for v in noise_bufs:
        noise = tf.reshape(v, [1, v.shape[0], v.shape[1], 1])
        while True:
            reg += tf.square(tf.reduce_mean(noise * tf.roll(noise, 1, axis=2))) + \
                tf.square(tf.reduce_mean(noise * tf.roll(noise, 1, axis=1)))
            if noise.shape[1] <= 8:
                break
            noise = tf.nn.avg_pool2d(noise, 2, 2, 'VALID')
    return reg


def prepare_target(image, resolution, channels, log=print):
    """HWC uint8 image of any size/channels -> [resolution, resolution, channels] uint8 (centre crop + resize)."""
    from PIL import Image
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f'target: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {img.shape}')
    if img.shape[-1] == 4:
        log('target: dropping the alpha channel')
        img = img[:, :, :3]
    if img.shape[-1] != channels:
        if channels == 1:
            log('target: converting RGB to grey (the network makes 1-channel images)')
            img = np.asarray(Image.fromarray(img).convert('L'))[:, :, None]
        else:
            log('target: repeating the grey channel to RGB (the network makes 3-channel images)')
            img = np.repeat(img, 3, axis=-1)
    h, w = img.shape[:2]
    if (h, w) != (resolution, resolution):
        s = min(h, w)
        log(f'target: centre-cropping {w}x{h} to {s}x{s} and resizing to {resolution}x{resolution}')
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        pil = Image.fromarray(img[:, :, 0] if channels == 1 else img)
        img = np.asarray(pil.resize((resolution, resolution), Image.LANCZOS))
        img = img[:, :, None] if img.ndim == 2 else img
    return img.astype(np.uint8)


def _noise_buffers(G):
    return [v for name, v in G.reference_variables().items() if name.endswith('noise_const')]


def project(G, target, distance, num_steps=1000, space='w', seed=0, transform=None, w_avg_samples=10000,
            initial_learning_rate=0.1, initial_noise_factor=0.05, lr_rampdown_length=0.25, lr_rampup_length=0.05,
            noise_ramp_length=0.75, regularize_noise_weight=1e5, progress=None, snapshot_every=0):
    """Optimises w (or w+) so that G reproduces ``target`` ([H, W, C] uint8 at G's resolution).

    Returns a dict: ``w`` [num_ws, w_dim] (the ws the final image uses), ``image`` (float NHWC [1, ...]),
    ``history`` (per step: distance, noise regularisation), ``snapshots`` (images every ``snapshot_every``
    steps), ``noise`` (StyleGAN2 noise buffers, or {}), and the timing. The generator's noise buffers are
    restored afterwards.
    """
    if space not in ('w', 'w+'):
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    if G.c_dim:
        raise ValueError('projection of conditional networks is not supported')
    target = np.asarray(target)
    expected = (G.img_resolution, G.img_resolution, G.img_channels)
    if target.shape != expected:
        raise ValueError(f'target: expected shape {expected} (use prepare_target), got {target.shape}')
    start = time.time()
    rng = np.random.RandomState(seed)
    z = rng.randn(w_avg_samples, G.z_dim).astype(np.float32)
    w_samples = np.concatenate([G.mapping(z[i:i + 1000]).numpy()[:, :1, :] for i in range(0, len(z), 1000)])
    w_avg = w_samples.mean(0, keepdims=True)                          # [1, 1, w_dim]
    w_std = float(np.sqrt(np.sum((w_samples - w_avg) ** 2) / w_avg_samples))
    num_ws = G.num_ws
    w_opt = tf.Variable(np.repeat(w_avg, num_ws, axis=1) if space == 'w+' else w_avg, dtype=tf.float32)
    noise_bufs = _noise_buffers(G) if G.preset.has_noise else []
    saved = [v.numpy().copy() for v in noise_bufs]
    noise_rng = np.random.RandomState(seed + 1)
    for v in noise_bufs:
        v.assign(noise_rng.randn(*v.shape).astype(np.float32))
    opt_vars = [w_opt] + noise_bufs
    import keras
    optimizer = keras.optimizers.Adam(learning_rate=initial_learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    optimizer.build(opt_vars)
    target_images = tf.constant(target[np.newaxis].astype(np.float32))
    if target_images.shape[1] > 256:
        target_images = tf.image.resize(target_images, [256, 256], method='area')
    target_features = distance.features(target_images)

    def synth(w):
        ws = tf.tile(w, [1, num_ws, 1]) if space == 'w' else w
        return G.synthesis(ws, transform=transform, noise_mode='const') if G.architecture != 'stylegan2' else \
            G.synthesis(ws, noise_mode='const')

    @tf.function
    def step(w_noise_scale, lr):
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            tape.watch([v.value if hasattr(v, 'value') else v for v in noise_bufs])   # Non-trainable buffers.
            w_noise = tf.random.normal(tf.shape(w_opt), seed=None) * w_noise_scale
            img = synth(w_opt + w_noise)
            synth_images = (img + 1) * 127.5
            if synth_images.shape[1] > 256:
                synth_images = tf.image.resize(synth_images, [256, 256], method='area')
            dist = tf.reduce_sum(distance.distance(target_features, distance.features(synth_images)))
            reg = noise_regularization(noise_bufs) if noise_bufs else tf.constant(0.0)
            loss = dist + reg * regularize_noise_weight
        grads = tape.gradient(loss, [w_opt] + [v.value if hasattr(v, 'value') else v for v in noise_bufs])
        optimizer.apply([tf.zeros_like(v) if g is None else g for g, v in zip(grads, opt_vars)], opt_vars)
        for v in noise_bufs:          # Normalise the noise maps.
            v.assign((v - tf.reduce_mean(v)) * tf.math.rsqrt(tf.reduce_mean(tf.square(v - tf.reduce_mean(v)))))
        return dist, reg

    tf.random.set_seed(seed)
    history, snapshots = [], []
    try:
        for i in range(num_steps):
            t = i / num_steps
            w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
            lr_ramp = min(1.0, (1.0 - t) / lr_rampdown_length)
            lr_ramp = 0.5 - 0.5 * np.cos(lr_ramp * np.pi)
            lr_ramp = lr_ramp * min(1.0, t / lr_rampup_length)
            dist, reg = step(tf.constant(w_noise_scale, tf.float32), tf.constant(initial_learning_rate * lr_ramp,
                                                                                 tf.float32))
            history.append({'step': i, 'distance': float(dist), 'noise_reg': float(reg)})
            if snapshot_every and (i % snapshot_every == 0 or i == num_steps - 1):
                snapshots.append(synth(w_opt).numpy()[0])
            if progress:
                progress(i + 1, num_steps, history[-1])
        w_final = w_opt.numpy()
        image = synth(tf.constant(w_final)).numpy()
        noise = {f'noise{k}': v.numpy().copy() for k, v in enumerate(noise_bufs)}
    finally:
        for v, s in zip(noise_bufs, saved):
            v.assign(s)
    ws = np.repeat(w_final, num_ws, axis=1)[0] if space == 'w' else w_final[0]
    return {'w': ws, 'image': image, 'history': history, 'snapshots': snapshots, 'noise': noise,
            'seconds': time.time() - start, 'w_avg': w_avg[0, 0]}


def psnr(a, b):
    """PSNR (dB) between float images in [-1, 1] (peak-to-peak 2)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float(20 * np.log10(2) - 10 * np.log10(max(mse, 1e-20)))
