"""Console tools: afgan-generate, -video, -spectra, -sticking, -export (subprocesses), and their analysis code."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from afgan_tf import images, network_io, nvidia
from afgan_tf.cli import common
from afgan_tf.metrics import spectra, sticking

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')


def tool(name, *args):
    return subprocess.run([sys.executable, '-m', f'afgan_tf.cli.{name}', *args], capture_output=True, text=True,
                          env=ENV, timeout=600)


@pytest.fixture(scope='module')
def network(tmp_path_factory, reference_dir):
    net = nvidia.load_network_pkl(reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl')
    path = tmp_path_factory.mktemp('net') / 'sg3t'
    network_io.save_network(path, {'G_ema': net['G_ema']}, extras={'architecture': 'stylegan3-t'})
    return path, net['G_ema']


def test_generate_seeds_match_reference_latents(network, tmp_path):
    path, G = network
    out = tmp_path / 'gen'
    r = tool('generate', f'--network={path}', '--seeds=3-4', '--trunc=0.7', f'--outdir={out}')
    assert r.returncode == 0, r.stderr[-2000:]
    z = np.random.RandomState(4).randn(1, G.z_dim).astype(np.float32)      # gen_images.py's latents.
    expected = images.to_uint8(G(z, truncation_psi=0.7).numpy())[0].astype(int)
    got = np.asarray(Image.open(out / 'seed0004.png')).astype(int)
    assert sorted(os.listdir(out)) == ['seed0003.png', 'seed0004.png']
    assert np.max(np.abs(got - expected)) <= 1


def test_generate_grid_transform_and_zfile(network, tmp_path):
    path, G = network
    r = tool('generate', f'--network={path}', '--seeds=0-5', '--grid=3x2', '--translate=0.1,0', '--rotate=15',
             f'--outdir={tmp_path / "grid"}')
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.asarray(Image.open(tmp_path / 'grid' / 'grid.png')).shape == (64, 96, 3)
    z = np.random.default_rng(0).standard_normal([2, G.z_dim]).astype(np.float32)
    np.save(tmp_path / 'z.npy', z)
    for layout, shape in (('nchw', (2, 3, 32, 32)), ('nhwc', (2, 32, 32, 3))):
        r = tool('generate', f'--network={path}', f'--z-file={tmp_path / "z.npy"}', f'--out={tmp_path / layout}.npy',
                 f'--layout={layout}')
        assert r.returncode == 0, r.stderr[-2000:]
        arr = np.load(tmp_path / f'{layout}.npy')
        assert arr.shape == shape
    assert np.max(np.abs(np.load(tmp_path / 'nhwc.npy') - G(z).numpy())) < 1e-4


@pytest.mark.parametrize('args, message', [
    (['--seeds=0-3', '--network={missing}'], 'network not found'),
    (['--seeds=-1', '--network={net}'], 'seeds must be in'),
    (['--seeds=4294967296', '--network={net}'], 'seeds must be in'),
    (['--seeds=x', '--network={net}'], '--seeds must be like'),
    (['--z-file={badz}', '--out={tmp}/o.npy', '--network={net}'], 'must hold'),
    (['--seeds=0', '--network={notanet}'], 'unknown network format'),
])
def test_generate_bad_input(network, tmp_path, args, message):
    path, _ = network
    np.save(tmp_path / 'badz.npy', np.zeros([2, 5], np.float32))
    (tmp_path / 'notanet.txt').write_text('x')
    fmt = dict(missing=tmp_path / 'missing', net=path, badz=tmp_path / 'badz.npy', tmp=tmp_path,
               notanet=tmp_path / 'notanet.txt')
    out = tmp_path / 'out'
    r = tool('generate', *[a.format(**fmt) for a in args], f'--outdir={out}')
    assert r.returncode != 0 and message in r.stderr, r.stderr[-1000:]
    assert not out.exists() and not (tmp_path / 'o.npy').exists()


def test_export_cli_refuses_existing(network, tmp_path):
    path, _ = network
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--version=2')
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / 'm' / '2' / 'saved_model.pb').is_file()
    before = (tmp_path / 'm' / '2' / 'saved_model.pb').stat().st_mtime_ns
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--version=2')
    assert r.returncode != 0 and 'exists' in r.stderr
    assert (tmp_path / 'm' / '2' / 'saved_model.pb').stat().st_mtime_ns == before


def test_video_gif(network, tmp_path):
    path, _ = network
    out = tmp_path / 'v.gif'
    r = tool('video', f'--network={path}', '--seeds=0-3', '--grid=2x1', '--frames=3', '--rotate-speed=30',
             f'--out={out}')
    assert r.returncode == 0, r.stderr[-2000:]
    with Image.open(out) as gif:
        assert gif.size == (64, 32) and gif.n_frames == 6
    r = tool('video', f'--network={path}', '--seeds=0-2', '--grid=2x1', f'--out={tmp_path / "w.gif"}')
    assert r.returncode != 0 and 'multiple of the grid' in r.stderr
    r = tool('video', f'--network={path}', f'--out={out}')
    assert r.returncode != 0 and 'exists' in r.stderr


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


def test_sticking_ratio_separates_sticky_from_moving_content():
    rng = np.random.default_rng(0)
    pattern = rng.standard_normal([32, 32, 1]).astype(np.float32)

    def sticky(z):        # Details fixed to pixel coordinates whatever the latent.
        return np.repeat(pattern[np.newaxis], len(z), axis=0) * (1 + 0.01 * z[:, :1, None, None])

    def moving(z):        # The same details, shifted with the latent.
        return np.stack([np.roll(pattern, int(round(8 * v)), axis=(0, 1)) for v in z[:, 0]])
    _, _, r_sticky = sticking.neighborhood_average(sticky, np.zeros(4), num=32, sigma=1.0)
    _, _, r_moving = sticking.neighborhood_average(moving, np.zeros(4), num=32, sigma=1.0)
    assert r_sticky > 0.9 and r_moving < 0.3
    strip = sticking.interpolation_slices(sticky, np.zeros(4), np.ones(4), frames=5)
    assert strip.shape == (32, 5, 1) and np.allclose(strip[:, 0], strip[:, -1], atol=0.1)


def test_spectrum_of_a_sinusoid_peaks_at_its_frequency():
    x = np.arange(32)
    wave = 128 + 100 * np.sin(2 * np.pi * 5 * x / 32)
    img = np.tile(wave[np.newaxis, :, np.newaxis], [32, 1, 1])[np.newaxis]
    acc = spectra.SpectrumAccumulator(32, mean=128, std=50, interp=1)
    acc.add(img)
    s = acc.result()
    assert np.unravel_index(np.argmax(s), s.shape) in ((0, 5), (0, 27))


def test_parsers():
    assert common.parse_seeds('0-2,9') == [0, 1, 2, 9]
    assert common.parse_grid('4x2') == (4, 2)
    for bad in ('3-1', 'a', '-5'):
        with pytest.raises(common.UsageError):
            common.parse_seeds(bad)
    with pytest.raises(common.UsageError):
        common.parse_grid('4by2')
