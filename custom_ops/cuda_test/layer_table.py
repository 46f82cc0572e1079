"""The filtered_lrelu calls of StyleGAN3-T and -R, without TensorFlow or PyTorch.

Shared by the GPU check (cuda_kernel_check.py) and the CPU-side kernel model (kernel_model.py):
both run where the ``afgan_tf`` package (which imports TensorFlow) is not wanted, so the layer
table and the filter design (numpy / scipy only) are loaded by file path.
"""

import importlib.util
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
# The source tree (custom_ops/ beside afgan_tf/) or an installed package (afgan_tf/custom_ops/).
SOURCE_TREE = (HERE.parents[1] / 'afgan_tf' / 'stylegan3_layers.py').is_file()
PACKAGE = HERE.parents[1] / 'afgan_tf' if SOURCE_TREE else HERE.parents[1]


def load_module(name, path):
    """Imports one file as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stylegan3_layers = load_module('afgan_stylegan3_layers', PACKAGE / 'stylegan3_layers.py')
filters = load_module('afgan_filters', PACKAGE / 'filters.py')
cuda_api = load_module('afgan_cuda_api', HERE.parent / 'cuda_api.py')

ARCHS = ('stylegan3-t', 'stylegan3-r')


def layer_cases(arch, resolution=256, batch=4):
    """Yields ``(name, x shape [n, h, w, c], fu, fd, kwargs)`` for every synthesis layer of the
    full-size network `arch` (NVIDIA's channel_base / channel_max), in cuda_api.prepare's names."""
    if arch not in ARCHS:
        raise ValueError(f'arch must be one of {ARCHS}, got {arch!r}')
    kwargs = dict(channel_base=32768, channel_max=512) if arch == 'stylegan3-t' else \
        dict(channel_base=65536, channel_max=1024, conv_kernel=1, use_radial_filters=True)
    table = stylegan3_layers.stylegan3_layer_specs(resolution, 3, **kwargs)
    for s in table['layers']:
        fu = filters.design_lowpass_filter(s['up_taps'], s['in_cutoff'], s['in_half_width'] * 2,
                                           s['tmp_sampling_rate'])
        fd = filters.design_lowpass_filter(s['down_taps'], s['out_cutoff'], s['out_half_width'] * 2,
                                           s['tmp_sampling_rate'], radial=s['down_radial'])
        size = s['in_size'][0] + s['conv_kernel'] - 1
        kw = dict(up=s['up_factor'], down=s['down_factor'], padding=s['padding'],
                  gain=1.0 if s['is_torgb'] else float(np.sqrt(2)), slope=1.0 if s['is_torgb'] else 0.2,
                  clamp=s['conv_clamp'], flip=False)
        yield s['name'], [batch, size, size, s['out_channels']], fu, fd, kw
