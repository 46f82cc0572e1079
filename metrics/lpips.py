"""LPIPS (Zhang et al. 2018) on VGG16 features, for perceptual path length; read without PyTorch.

The distance between images x0 and x1 is

    d(x0, x1) = sum over layers l of  mean over (h, w) of  sum over c of  w_lc * (n0_lhwc - n1_lhwc)^2

where n is the VGG16 activation after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, unit-normalised
over channels (``f / (|f| + 1e-10)``), and w_l the non-negative linear calibration weights of LPIPS.
``Lpips.embed`` returns, per image, those features scaled by ``sqrt(w_lc / (H_l W_l))`` and flattened,
so that the squared L2 distance of two embeddings is the LPIPS distance (NVIDIA's VGG16 detector
does the same with ``return_lpips=True``).

VGG16 weights (``vgg16_path``, ``--vgg16`` or ``$AFGAN_TF_VGG16``), detected by content:

* a torchvision VGG16 state dict (``vgg16-397923af.pth``, ``torch.save`` of ``features.N.weight``):
  the network LPIPS was calibrated on; the input is scaled as LPIPS does (RGB in [-1, 1], then
  ``(x - shift) / scale``);
* a TorchScript archive (a traced LPIPS or VGG16 detector): its 13 VGG16 convolutions are found by
  shape in the order they are stored, and 5 ``[1, C, 1, 1]`` tensors, if present, are its
  calibration weights; scaled as the torchvision weights;
* the Keras ImageNet VGG16 file (``.h5``) the project already takes for precision/recall: the
  original Caffe VGG16, BGR with the ImageNet mean subtracted. LPIPS was not calibrated on it, so its
  distances differ from NVIDIA's (see the README).

Calibration weights (LPIPS v0.1, ``vgg.pth`` of the PyPI ``lpips`` package): ``lpips_path``,
``--lpips`` or ``$AFGAN_TF_LPIPS``, else downloaded once from PyPI (``lpips==0.1.4``, 50 kB) into
the cache. All files are read with ``afgan_tf.torch_pickle`` (no PyTorch, no code from the file).
"""

import os
import pickle
import zipfile

import numpy as np
import tensorflow as tf

from afgan_tf import torch_pickle
from afgan_tf.cache import cache_dir, pypi_member

LPIPS_PACKAGE = 'lpips'
LPIPS_VERSION = '0.1.4'
LPIPS_MEMBER = 'lpips/weights/v0.1/vgg.pth'
LPIPS_CACHE_NAME = 'lpips_v0.1_vgg.pth'
# VGG16's 13 convolutions (out channels), max pooling after the 2nd, 4th, 7th and 10th; LPIPS taps
# the ReLU after convolutions 2, 4, 7, 10 and 13.
VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
POOL_AFTER = (1, 3, 6, 9)
TAP_AFTER = (1, 3, 6, 9, 12)
TAP_CHANNELS = tuple(VGG16_CHANNELS[i] for i in TAP_AFTER)
# LPIPS's ScalingLayer (input in [-1, 1]).
LPIPS_SHIFT = np.array([-.030, -.088, -.188], np.float32)
LPIPS_SCALE = np.array([.458, .448, .450], np.float32)
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
EPS = 1e-10
VGG16_HINT = ('supply VGG16 weights with --vgg16 / $AFGAN_TF_VGG16: the torchvision state dict '
              'vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth; reproduces LPIPS as '
              'NVIDIA computes it), a TorchScript LPIPS/VGG16 archive, or the Keras VGG16 .h5')


# ---------------------------------------------------------------------------------------------
# Weights.

def _vgg_shapes():
    shapes, cin = [], 3
    for cout in VGG16_CHANNELS:
        shapes.append((cout, cin, 3, 3))
        cin = cout
    return shapes


def _from_torch_tensors(tensors, what):
    """Ordered {name: array} -> (13 (kernel HWIO, bias) pairs, calibration weights or None)."""
    shapes, convs, lin = _vgg_shapes(), [], []
    names = list(tensors)
    for i, name in enumerate(names):
        value = np.asarray(tensors[name])
        if len(convs) < 13 and value.shape == shapes[len(convs)]:
            bias = next((np.asarray(tensors[n]) for n in names[i + 1:i + 3]
                         if np.shape(tensors[n]) == (shapes[len(convs)][0],)), None)
            if bias is None:
                raise ValueError(f'{what}: VGG16 convolution {len(convs)} ({name}) has no bias')
            convs.append((value.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)))
        elif value.ndim == 4 and value.shape[0] == 1 and value.shape[2:] == (1, 1) and len(lin) < 5 and \
                value.shape[1] == TAP_CHANNELS[len(lin)]:
            lin.append(value.reshape(-1).astype(np.float32))
    if len(convs) != 13:
        raise ValueError(f'{what}: found {len(convs)} of the 13 VGG16 convolutions (expected weights of shapes '
                         f'{shapes[len(convs)] if len(convs) < 13 else ""} ... in order); {VGG16_HINT}')
    return convs, (lin if len(lin) == 5 else None)


def _torch_tensors(path):
    """A torch.save state dict or a TorchScript archive -> ordered {name: array}."""
    from afgan_tf import safe_files
    try:
        safe_files.check_regular_file(path, torch_pickle.MAX_FILE_BYTES)
    except safe_files.NotARegularFile as e:
        raise pickle.UnpicklingError(str(e)) from None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            is_script = any(n.split('/', 1)[-1].startswith('code/') for n in z.namelist())
        if is_script:
            return torch_pickle.script_module_tensors(torch_pickle.load_torchscript(path))
    state = torch_pickle.load_torch_save(path)
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{path}: holds a {type(state).__name__}, not a state dict')
    return {k: v for k, v in state.items() if isinstance(v, np.ndarray)}


def load_vgg16(path):
    """VGG16 weights file -> (convs, calibration weights or None, preprocessing 'lpips' or 'caffe')."""
    if str(path).endswith(('.h5', '.keras')):
        from afgan_tf.metrics.vgg16 import Vgg16Features
        base = Vgg16Features(path).convs
        layers = [layer for layer in base.layers if layer.name.startswith('block') and 'conv' in layer.name]
        return [tuple(np.asarray(w) for w in layer.get_weights()) for layer in layers], None, 'caffe'
    try:
        tensors = _torch_tensors(path)
    except pickle.UnpicklingError as e:
        raise ValueError(f'{path}: not a VGG16 weights file ({e}); {VGG16_HINT}') from e
    convs, lin = _from_torch_tensors(tensors, path)
    return convs, lin, 'lpips'


def lpips_weights_path(path=None, log=print):
    """The LPIPS v0.1 VGG calibration file: given, ``$AFGAN_TF_LPIPS``, cached, or fetched once."""
    path = path or os.environ.get('AFGAN_TF_LPIPS')
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'lpips: no such file {path!r} (expected {LPIPS_MEMBER} of the {LPIPS_PACKAGE} '
                                    'package, or its wheel)')
        if str(path).endswith('.whl'):
            from afgan_tf.cache import wheel_member
            return wheel_member(path, LPIPS_MEMBER, cache_dir() / LPIPS_CACHE_NAME)
        return str(path)
    target = cache_dir() / LPIPS_CACHE_NAME
    if not target.is_file():
        pypi_member(LPIPS_PACKAGE, LPIPS_VERSION, LPIPS_MEMBER, target, 'LPIPS calibration', size='50 kB', log=log)
    return str(target)


def load_lpips_weights(path):
    """``vgg.pth`` of the lpips package -> 5 arrays [C] (lin0 ... lin4)."""
    try:
        state = torch_pickle.load_torch_save(path)
    except pickle.UnpicklingError as e:
        raise ValueError(f'lpips: {e}') from e
    lin = []
    for i, channels in enumerate(TAP_CHANNELS):
        w = np.asarray(state.get(f'lin{i}.model.1.weight', np.zeros(0)) if isinstance(state, dict) else np.zeros(0))
        if w.shape != (1, channels, 1, 1):
            raise ValueError(f'lpips: {path} lacks lin{i}.model.1.weight of shape [1, {channels}, 1, 1] '
                             f'(expected {LPIPS_MEMBER} of the {LPIPS_PACKAGE} package)')
        lin.append(w.reshape(-1).astype(np.float32))
    return lin


# ---------------------------------------------------------------------------------------------
# The distance.

class Lpips:
    """LPIPS distance on VGG16 (see the module docstring).

    Args:
        vgg16_path: VGG16 weights (None: ``$AFGAN_TF_VGG16``).
        lpips_path: LPIPS calibration weights (None: from the VGG16 file if it holds them, else
            ``$AFGAN_TF_LPIPS``, the cache, or PyPI once).
        log: progress messages.
    """

    def __init__(self, vgg16_path=None, lpips_path=None, log=print):
        vgg16_path = vgg16_path or os.environ.get('AFGAN_TF_VGG16')
        if not vgg16_path:
            raise FileNotFoundError(f'VGG16 weights are needed for LPIPS (perceptual path length): {VGG16_HINT}')
        from afgan_tf.metrics.vgg16 import check_weights_file
        convs, lin, self.preprocessing = load_vgg16(check_weights_file(vgg16_path, VGG16_HINT))
        if lin is None or lpips_path or os.environ.get('AFGAN_TF_LPIPS'):
            lpips_path = lpips_weights_path(lpips_path, log=log)
            lin = load_lpips_weights(lpips_path)
        self.kernels = [(tf.constant(k), tf.constant(b)) for k, b in convs]
        self.lin = [tf.constant(np.maximum(w, 0)) for w in lin]      # LPIPS clamps them non-negative.
        self._embed = tf.function(self._embed_graph, reduce_retracing=True)

    def preprocess(self, images):
        """NHWC in [0, 255], 1 or 3 channels -> the network's input."""
        x = tf.cast(images, tf.float32)
        if x.shape[-1] == 1:
            x = tf.tile(x, [1, 1, 1, 3])
        if self.preprocessing == 'caffe':
            return x[..., ::-1] - _CAFFE_BGR_MEAN
        return (x / 127.5 - 1 - LPIPS_SHIFT) / LPIPS_SCALE

    def features(self, images):
        """The 5 tapped activations, unit-normalised over channels."""
        x, taps = self.preprocess(images), []
        for i, (kernel, bias) in enumerate(self.kernels):
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, 'SAME') + bias)
            if i in TAP_AFTER:
                taps.append(x / (tf.sqrt(tf.reduce_sum(tf.square(x), -1, keepdims=True)) + EPS))
            if i in POOL_AFTER:
                x = tf.nn.max_pool2d(x, 2, 2, 'VALID')
        return taps

    def _embed_graph(self, images):
        out = []
        for f, w in zip(self.features(images), self.lin):
            hw = tf.cast(tf.shape(f)[1] * tf.shape(f)[2], tf.float32)
            out.append(tf.reshape(f * tf.sqrt(w / hw), [tf.shape(f)[0], -1]))
        return tf.concat(out, 1)

    def embed(self, images):
        """[N, D] embeddings whose squared L2 distances are LPIPS distances (images NHWC in [0, 255])."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f'images: expected NHWC with 1 or 3 channels, got shape {images.shape}')
        if images.shape[1] < 16 or images.shape[2] < 16:
            raise ValueError(f'images: LPIPS on VGG16 needs at least 16x16 pixels, got {images.shape[1]}x'
                             f'{images.shape[2]}')
        return self._embed(images)

    def distance(self, images0, images1):
        """[N] LPIPS distances between two batches of images."""
        return tf.reduce_sum(tf.square(self.embed(images0) - self.embed(images1)), 1)
