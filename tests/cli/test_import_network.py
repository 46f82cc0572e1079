"""afgan-import: NVIDIA pickles to project network directories."""

import json
import os
import pickle

import pytest

from afgan_tf import network_io

from conftest import TOL, EvilPickle, max_abs, nhwc, tool


def test_import_cli_and_load_network(tmp_path, snapshot):
    path, net, io_ = snapshot
    out = tmp_path / 'imported'
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    result = tool('import_network', f'--pkl={path}', f'--out={out}', env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'imported G, D, G_ema' in result.stdout
    meta = json.loads((out / 'networks.json').read_text())
    assert meta['format'] == 'afgan_tf-network' and meta['extras']['architecture'] == 'stylegan3-t'
    loaded = network_io.load_network(out)
    assert max_abs(loaded['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    assert max_abs(loaded['D'](nhwc(io_['img'])), io_['d_logits']) < TOL
    assert loaded['augment_p'] == pytest.approx(net['augment_p'])
    # Existing output: refused without --force, no partial output.
    again = tool('import_network', f'--pkl={path}', f'--out={out}', env=env)
    assert again.returncode != 0 and 'exists' in again.stderr
    # A refused pickle: non-zero exit, nothing written.
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps({'G': EvilPickle(tmp_path / 'pwned3')}, protocol=2))
    bad = tool('import_network', f'--pkl={evil}', f'--out={tmp_path / "x"}', env=env)
    assert bad.returncode != 0 and 'refusing to load global' in bad.stderr
    assert not (tmp_path / 'x').exists() and not (tmp_path / 'pwned3').exists()
