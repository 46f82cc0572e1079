"""afgan-spectra and afgan-sticking on a shared reference network."""

import json

import numpy as np
from PIL import Image

from conftest import tool


def test_spectra_and_sticking_tools(network, tmp_path):
    path, _ = network
    data = tmp_path / 'data'
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, [32, 32, 3], dtype=np.uint8)).save(data / f'{i}.png')
    r = tool('spectra', f'--source={data}', f'--source={path}', '--num=8', f'--outdir={tmp_path / "spec"}')
    assert r.returncode == 0, r.stderr[-2000:]
    spec = np.load(tmp_path / 'spec' / 'sg3t.npz')
    assert spec['spectrum'].shape == (128, 128) and int(spec['image_size']) == 32
    for name in ('heatmaps.png', 'slices_0deg.png', 'slices_45deg.png'):
        assert (tmp_path / 'spec' / name).is_file()
    # White noise has a flat spectrum; the generator's falls off at high frequencies.
    noise = np.load(tmp_path / 'spec' / 'data.npz')['spectrum']
    assert noise[64, 64] > 0 and spec['spectrum'][64, 64] < noise[64, 64]
    r = tool('sticking', f'--network={path}', '--num=8', '--frames=8', f'--outdir={tmp_path / "stick"}')
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert 0 < result['hf_energy_ratio'] < 1.5
    assert np.asarray(Image.open(tmp_path / 'stick' / 'slices.png')).shape == (32, 8, 3)
