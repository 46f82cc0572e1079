"""afgan-video."""

from PIL import Image

from conftest import tool


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
