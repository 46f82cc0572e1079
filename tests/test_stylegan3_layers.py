"""The StyleGAN3 construction logic against the reference's per-layer tables and parameter counts."""

import json

import numpy as np
import pytest

import afgan_tf
from afgan_tf.stylegan3_layers import stylegan3_layer_specs

SPEC_ARGS = ('channel_base', 'channel_max', 'conv_kernel', 'use_radial_filters')


def _compare_tables(ours, ref):
    assert ours['input'] == ref['input']
    assert ours['num_ws'] == ref['num_ws']
    assert len(ours['layers']) == len(ref['layers'])
    for mine, theirs in zip(ours['layers'], ref['layers']):
        for key, value in theirs.items():
            assert mine[key] == value, (theirs['name'], key, mine[key], value)


def _table_files(reference_dir):
    files = sorted((reference_dir / 'layer_tables').glob('layers_*.json'))
    assert len(files) == 6
    return files


def test_full_size_layer_tables(reference_dir):
    for path in _table_files(reference_dir):
        table = json.loads(path.read_text())
        kwargs = table['generator_kwargs']
        ours = stylegan3_layer_specs(kwargs['img_resolution'], kwargs['img_channels'],
                                     **{k: kwargs[k] for k in SPEC_ARGS if k in kwargs})
        _compare_tables(ours, table)


def test_full_size_parameter_counts(reference_dir):
    for path in _table_files(reference_dir):
        table = json.loads(path.read_text())
        kwargs = dict(table['generator_kwargs'])
        kwargs.pop('c_dim')
        arch = 'stylegan3-r' if kwargs.get('use_radial_filters') else 'stylegan3-t'
        G = afgan_tf.Generator(architecture=arch, **kwargs)
        count = sum(int(np.prod(v.shape)) for v in G.trainable_weights)
        assert count == table['num_params_G'], path.name
        # The built layers carry the table too.
        assert [G.synthesis.spec['layers'][i]['name'] for i in range(15)] == [l['name'] for l in table['layers']]


@pytest.mark.parametrize('name', ['stylegan3-t_32', 'stylegan3-r_32'])
def test_small_network_tables(reference_dir, name):
    meta = json.loads((reference_dir / name / 'meta.json').read_text())
    kwargs = meta['generator_kwargs']
    ours = stylegan3_layer_specs(kwargs['img_resolution'], kwargs['img_channels'],
                                 **{k: kwargs[k] for k in SPEC_ARGS if k in kwargs})
    _compare_tables(ours, meta['layers'])


def test_presets_are_data():
    assert set(afgan_tf.PRESETS) == {'stylegan3-t', 'stylegan3-r', 'stylegan2'}
    r = afgan_tf.Generator('stylegan3-r', z_dim=8, w_dim=8, img_resolution=16, channel_base=256, channel_max=16)
    assert r.synthesis.spec['layers'][0]['conv_kernel'] == 1
    assert any(l['down_radial'] for l in r.synthesis.spec['layers'])
    t = afgan_tf.Generator('stylegan3-t', z_dim=8, w_dim=8, img_resolution=16, channel_base=256, channel_max=16)
    assert t.synthesis.spec['layers'][0]['conv_kernel'] == 3
    assert not any(l['down_radial'] for l in t.synthesis.spec['layers'])
