"""Shared pytest fixtures: the reference data (tests/data/reference) and loaded networks."""

import json
import lzma
import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import pytest

# The trimmed copy of NVIDIA's reference data that travels with the tests (regenerate it with
# tests/data/make_reference.py from ../shared/reference).
REFERENCE_DIR = pathlib.Path(__file__).resolve().parent / 'data' / 'reference'
REQUIRE_REFERENCE_ENV = 'AFGAN_TF_REQUIRE_REFERENCE'   # 1: a missing copy is an error, not a skip.
NETWORKS = ['stylegan3-t_32', 'stylegan3-r_32', 'stylegan2_32']


def nhwc(a):
    """NCHW (reference layout) -> NHWC."""
    return np.transpose(np.asarray(a), (0, 2, 3, 1))


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@pytest.fixture(scope='session')
def reference_dir(tmp_path_factory):
    """The reference data as the tests read it: the trimmed copy, with compressed files expanded."""
    if not (REFERENCE_DIR / 'ops.json').is_file():
        message = f'reference data not found at {REFERENCE_DIR} (run tests/data/make_reference.py)'
        if os.environ.get(REQUIRE_REFERENCE_ENV, '0') == '1':
            pytest.fail(f'{REQUIRE_REFERENCE_ENV}=1 but {message}')
        pytest.skip(message)
    root = tmp_path_factory.mktemp('reference')
    for path in REFERENCE_DIR.rglob('*'):
        target = root / path.relative_to(REFERENCE_DIR)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == '.xz':
            target.with_suffix('').write_bytes(lzma.decompress(path.read_bytes()))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return root


def _pickle_state_dicts(path):
    """NVIDIA's state dicts of G_ema and D in a network pickle (the trimmed copy keeps one network's
    weights only there)."""
    from afgan_tf import torch_pickle
    with open(path, 'rb') as f:
        data = torch_pickle.load(f)
    return [{k: np.asarray(v) for k, v in torch_pickle.module_state_dict(data[key]).items()} for key in ('G_ema', 'D')]


class ReferenceNetwork:
    """One shared reference network: meta, state dicts, io arrays, and our models built from them."""

    def __init__(self, root, name):
        from afgan_tf import nvidia
        self.name = name
        self.dir = root / name
        self.meta = json.loads((self.dir / 'meta.json').read_text())
        self.io = dict(np.load(self.dir / 'io.npz'))
        if (self.dir / 'G.npz').is_file():
            self.G_state = dict(np.load(self.dir / 'G.npz'))
            self.D_state = dict(np.load(self.dir / 'D.npz'))
        else:
            self.G_state, self.D_state = _pickle_state_dicts(self.dir / 'network-snapshot.pkl')
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
