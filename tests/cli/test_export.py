"""afgan-export: refused input (the SavedModel itself: tests/export)."""

import pytest

from conftest import tool


def test_export_outdir_that_is_a_file(network, tmp_path):
    path, _ = network
    (tmp_path / 'file').write_text('x')
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "file"}')
    assert r.returncode == 2 and 'is a file, not a directory' in r.stderr and 'Traceback' not in r.stderr


def test_export_which_g_refuses_a_network_without_g(network, tmp_path):
    path, _ = network                                   # Holds G_ema only.
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "serving"}', '--which=G')
    assert r.returncode == 2 and 'holds no G (it has G_ema)' in r.stderr, r.stderr[-1000:]
    assert not (tmp_path / 'serving').exists()


def test_export_cli_refuses_existing(network, tmp_path):
    path, _ = network
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--version=2')
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / 'm' / '2' / 'saved_model.pb').is_file()
    before = (tmp_path / 'm' / '2' / 'saved_model.pb').stat().st_mtime_ns
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--version=2')
    assert r.returncode != 0 and 'exists' in r.stderr
    assert (tmp_path / 'm' / '2' / 'saved_model.pb').stat().st_mtime_ns == before


@pytest.mark.parametrize('batch', ['100000000000000000000', '2147483648', '0'])
def test_export_refuses_absurd_batches(network, tmp_path, batch):
    path, _ = network
    r = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--format=tflite', f'--batch={batch}')
    assert r.returncode == 2 and '--batch must be an integer in [1, 4096]' in r.stderr, r.stderr[-500:]


def test_export_checks_the_folder_before_converting(network, tmp_path):
    path, _ = network
    (tmp_path / 'afile').write_text('x')
    for fmt in ('savedmodel', 'tflite'):
        r = tool('export', f'--network={path}', f'--outdir={tmp_path / "afile" / "sub"}', f'--format={fmt}')
        assert r.returncode == 2 and 'is not a directory' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-800:]
