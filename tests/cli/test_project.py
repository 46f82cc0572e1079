"""afgan-project: the CLI, with the Inception and the VGG16 distance, and afgan-generate --w-file."""

import json
import os

import numpy as np
from PIL import Image

from conftest import tool


def test_project_cli_and_generate_w_file(reference_dir, tmp_path):
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    Image.fromarray(np.random.default_rng(0).integers(0, 256, [48, 40, 3]).astype(np.uint8)).save(tmp_path / 't.png')
    out = tmp_path / 'proj'
    r = tool('project', f'--network={pkl}', f'--target={tmp_path / "t.png"}', f'--outdir={out}', '--num-steps=3',
             '--w-avg-samples=100', '--save-video')
    assert r.returncode == 0, r.stderr[-3000:]
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line['metric'] == 'inception-multiscale+pixel' and line['steps'] == 3 and np.isfinite(line['psnr'])
    assert 'centre-cropping 40x48' in r.stderr
    assert {'projected_w.npz', 'proj.png', 'target.png', 'result.json'} <= set(os.listdir(out))
    assert any(n.startswith('proj.') and n != 'proj.png' for n in os.listdir(out))          # the video
    r = tool('generate', f'--network={pkl}', f'--w-file={out / "projected_w.npz"}', f'--outdir={tmp_path / "gen"}')
    assert r.returncode == 0, r.stderr[-2000:]
    again = np.asarray(Image.open(tmp_path / 'gen' / 'proj00.png')).astype(int)
    side = np.asarray(Image.open(out / 'proj.png')).astype(int)[:, 32:64]
    assert np.max(np.abs(again - side)) <= 1
    for target, message in ((tmp_path / 'missing.png', 'no such file'), (tmp_path / 'x.txt', 'is not an image')):
        if target.suffix == '.txt':
            target.write_text('hello')
        r = tool('project', f'--network={pkl}', f'--target={target}', f'--outdir={tmp_path / "bad"}')
        assert r.returncode == 2 and message in r.stderr, r.stderr[-1000:]


def test_project_cli_with_vgg16(reference_dir, random_vgg16_file, tmp_path):
    """afgan-project --vgg16 on a 32x32 network (crashed: the conv model expected 224x224 inputs)."""
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    Image.fromarray(np.random.default_rng(1).integers(0, 256, [32, 32, 3]).astype(np.uint8)).save(tmp_path / 't.png')
    r = tool('project', f'--network={pkl}', f'--target={tmp_path / "t.png"}', f'--outdir={tmp_path / "proj"}',
             '--num-steps=2', '--w-avg-samples=50', f'--vgg16={random_vgg16_file}')
    assert r.returncode == 0, r.stderr[-3000:]
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert line['metric'] == 'vgg16-lpips' and np.isfinite(line['distance'])
