"""afgan-dataset: 16-bit and mixed-channel sources, hostile input, Fashion-MNIST."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from afgan_tf.training import dataset

from conftest import tool


def test_convert_scales_16_bit_grey_and_keeps_the_majority_channel_count(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    ramp = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16).reshape(16, 16)     # 0 .. 65535
    Image.fromarray(ramp).save(src / 'a16.png')
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, [16, 16, 3], dtype=np.uint8)).save(src / f'b{i}.png')
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'c{i}.png')
    r = tool('dataset', f'--source={src}', f'--dest={tmp_path / "out.zip"}')
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary['written'] == 8 and summary['channels'] == 3 and summary['converted'] == 3   # No image dropped.
    images, _ = dataset.load_images(tmp_path / 'out.zip')
    assert np.array_equal(images[0, ..., 0], np.arange(256).reshape(16, 16))     # 16-bit scaled, not saturated.


def test_dataset_tool_refuses_or_skips_hostile_input(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / 'bomb'
    src.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(src / f'{i}.png')
    Image.new('L', (20000, 20000)).save(src / 'huge.png')                 # Over PIL's decompression-bomb limit.
    r = tool('dataset', f'--source={src}', f'--dest={tmp_path / "bomb.zip"}')
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])['too_large'] == 1, r.stderr[-2000:]
    (tmp_path / 'fake.zip').write_bytes(b'not a zip at all')
    r = tool('dataset', f'--source={tmp_path / "fake.zip"}', f'--dest={tmp_path / "o.zip"}')
    assert r.returncode == 2 and 'error:' in r.stderr and 'Traceback' not in r.stderr
    cases = {'bad_json': '{"labels": [', 'dict_labels': '{"labels": {"0.png": 1}}', 'nan': 'NaN', 'negative': -1,
             'fraction': 1.5, 'huge': 1e12, 'bool': 'true'}
    for name, value in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(folder / '0.png')
        literal = value if isinstance(value, str) else json.dumps(value)
        text = value if name in ('bad_json', 'dict_labels') else f'{{"labels": [["0.png", {literal}]]}}'
        (folder / 'dataset.json').write_text(text)
        r = tool('dataset', f'--source={folder}', f'--dest={tmp_path / (name + ".zip")}')
        assert r.returncode == 2 and '\nerror: ' in '\n' + r.stderr and 'Traceback' not in r.stderr, (name, r.stderr)
        assert not (tmp_path / (name + '.zip')).exists(), name
    # Labels are checked again on load (a dataset written by something else).
    with zipfile.ZipFile(tmp_path / 'hand.zip', 'w') as z:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, [16, 16], dtype=np.uint8)).save(buf, format='png')
        z.writestr('0.png', buf.getvalue())
        z.writestr('dataset.json', json.dumps({'labels': [['0.png', 1e12]]}))
    with pytest.raises(dataset.DatasetError, match=r'class labels must be integers in \[0, 65536\)'):
        dataset.load_images(tmp_path / 'hand.zip')


@pytest.mark.skipif(not dataset.FASHION_MNIST_DIR.is_dir(), reason='dataset-fashion-mnist not installed')
def test_dataset_cli_fashion_mnist(tmp_path):
    dest = tmp_path / 'fm.zip'
    r = tool('dataset', '--source=fashion-mnist', f'--dest={dest}', '--resolution=32', '--max_images=20')
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])['written'] == 20
    images, labels = dataset.load_images(dest)
    assert images.shape == (20, 32, 32, 1) and labels is not None and labels.max() <= 9
    again = tool('dataset', '--source=fashion-mnist', f'--dest={dest}')
    assert again.returncode != 0 and 'exists' in again.stderr


def test_sigterm_leaves_no_temporary_file(tmp_path):
    """A killed afgan-dataset (SIGTERM, as a job scheduler sends) removes its .NAME.zip.tmp."""
    import signal
    import subprocess
    import sys
    import time
    from conftest import ENV
    src = tmp_path / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(400):
        Image.fromarray(rng.integers(0, 255, [256, 256, 3], dtype=np.uint8)).save(src / f'{i:04d}.png')
    dest = tmp_path / 'out.zip'
    proc = subprocess.Popen([sys.executable, '-m', 'afgan_tf.cli.dataset', f'--source={src}', f'--dest={dest}',
                             '--resolution=128'], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tmp = tmp_path / '.out.zip.tmp'
    deadline = time.time() + 120
    while not tmp.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert tmp.exists(), proc.communicate()[1][-2000:]          # It is writing ...
    proc.send_signal(signal.SIGTERM)                            # ... and is told to stop.
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and 'interrupted' in err, err[-2000:]
    assert not tmp.exists() and not dest.exists()


def test_write_atomically_leaves_nothing_when_the_rename_fails(tmp_path, monkeypatch):
    import os
    from afgan_tf import cache
    target = tmp_path / 'model.tflite'

    def failing(src, dst):
        raise OSError('rename failed')
    monkeypatch.setattr(os, 'replace', failing)
    with pytest.raises(OSError, match='rename failed'):
        cache.write_atomically(target, b'x' * 1000)
    assert list(tmp_path.iterdir()) == []
