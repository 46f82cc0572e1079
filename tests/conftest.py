"""Shared pytest fixtures: the reference data in ../shared/reference and loaded networks."""

import json
import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import pytest

REFERENCE_DIR = pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'reference'
NETWORKS = ['stylegan3-t_32', 'stylegan3-r_32', 'stylegan2_32']


def nhwc(a):
    """NCHW (reference layout) -> NHWC."""
    return np.transpose(np.asarray(a), (0, 2, 3, 1))


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@pytest.fixture(scope='session')
def reference_dir():
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f'reference data not found at {REFERENCE_DIR}')
    return REFERENCE_DIR


class ReferenceNetwork:
    """One shared reference network: meta, state dicts, io arrays, and our models built from them."""

    def __init__(self, root, name):
        from afgan_tf import nvidia
        self.name = name
        self.dir = root / name
        self.meta = json.loads((self.dir / 'meta.json').read_text())
        self.io = dict(np.load(self.dir / 'io.npz'))
        self.G_state = dict(np.load(self.dir / 'G.npz'))
        self.D_state = dict(np.load(self.dir / 'D.npz'))
        self.G = nvidia.generator_from_state_dict(self.meta['architecture'], self.meta['generator_kwargs'],
                                                  self.G_state)
        self.D = nvidia.discriminator_from_state_dict(self.meta['discriminator_kwargs'], self.D_state)


_NETWORK_CACHE = {}


@pytest.fixture(scope='session')
def load_reference_network(reference_dir):
    def load(name):
        if name not in _NETWORK_CACHE:
            _NETWORK_CACHE[name] = ReferenceNetwork(reference_dir, name)
        return _NETWORK_CACHE[name]
    return load
