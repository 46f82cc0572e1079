"""afgan-generate: NVIDIA's seeds and transforms, z/w files, refused input."""

import os

import numpy as np
import pytest
from PIL import Image

from afgan_tf import image_writing as images

from conftest import tool


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
    (['--seeds=0', '--trunc=nan'], '--trunc must be a finite number'),
    (['--seeds=0', '--trunc=inf'], '--trunc must be a finite number'),
    (['--seeds=0', '--translate=nan,0'], '--translate must be finite numbers'),
    (['--seeds=0-99999999999'], 'at most 1000000 at a time'),
])
def test_generate_refuses_garbage_numbers(network, tmp_path, args, message):
    path, _ = network
    r = tool('generate', f'--network={path}', *args, f'--outdir={tmp_path / "out"}')
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, r.stderr[-1000:]
    assert not (tmp_path / 'out').exists()


def test_generate_transform_matches_reference(network, reference_dir, tmp_path):
    """--translate 0.1,-0.05 --rotate 10: NVIDIA's transformed images (img_xform) of the reference's z / ws."""
    path, _ = network
    io = np.load(reference_dir / 'stylegan3-t_32' / 'io.npz')
    expected = np.transpose(io['img_xform'], (0, 2, 3, 1))
    np.save(tmp_path / 'z.npy', io['z'])
    moved = ['--translate=0.1,-0.05', '--rotate=10']
    r = tool('generate', f'--network={path}', f'--z-file={tmp_path / "z.npy"}', f'--out={tmp_path / "x.npy"}',
             '--layout=nhwc', *moved)
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.max(np.abs(np.load(tmp_path / 'x.npy') - expected)) < 1e-4
    np.savez(tmp_path / 'w.npz', w=io['ws'])
    r = tool('generate', f'--network={path}', f'--w-file={tmp_path / "w.npz"}', f'--outdir={tmp_path / "w"}', *moved)
    assert r.returncode == 0, r.stderr[-2000:]
    for i in range(len(expected)):
        got = np.asarray(Image.open(tmp_path / 'w' / f'proj{i:02d}.png')).astype(int)
        assert np.max(np.abs(got - images.to_uint8(expected[i:i + 1])[0].astype(int))) <= 1


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
