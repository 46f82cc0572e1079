"""Importing NVIDIA network pickles without PyTorch and without executing their contents."""

import io
import json
import os
import pickle
import pickletools
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from afgan_tf import network_io, nvidia, torch_pickle
from conftest import max_abs, nhwc

TOL = 1e-4


@pytest.fixture(scope='module')
def snapshot(reference_dir):
    path = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    return path, nvidia.load_network_pkl(path), np.load(reference_dir / 'stylegan3-t_32' / 'io.npz')


def rewrite_strings(data, mapping):
    """Re-emits a pickle with some string constants replaced (frames dropped, lengths fixed)."""
    out = io.BytesIO()
    ops = list(pickletools.genops(data))
    for index, (op, arg, pos) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(data)
        if op.name == 'FRAME':
            continue
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE') and arg in mapping:
            raw = mapping[arg].encode()
            out.write(b'\x8c' + bytes([len(raw)]) + raw if len(raw) < 256 else
                      b'X' + len(raw).to_bytes(4, 'little') + raw)
            continue
        out.write(data[pos:end])
    return out.getvalue()


def test_g_ema_and_d_reproduce_reference(snapshot):
    _, net, io_ = snapshot
    G = net['G_ema']
    assert net['architecture'] == 'stylegan3-t'
    assert max_abs(G.synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    assert max_abs(G(io_['z'], truncation_psi=0.7), nhwc(io_['img_trunc07'])) < TOL
    assert max_abs(G.synthesis(io_['ws'], transform=io_['xform_matrix']), nhwc(io_['img_xform'])) < TOL
    assert max_abs(net['D'](nhwc(io_['img'])), io_['d_logits']) < TOL
    assert max_abs(net['D'](nhwc(io_['d_input_real'])), io_['d_logits_real']) < TOL


def test_g_differs_from_g_ema_as_stored(snapshot):
    path, net, io_ = snapshot
    raw = torch_pickle.load(open(path, 'rb'))
    stored_G = torch_pickle.module_state_dict(raw['G'])
    ours_G = nvidia.state_dict(net['G'])
    for key, value in stored_G.items():
        assert np.allclose(ours_G[key], value), key
    assert max_abs(net['G'].synthesis(io_['ws']), net['G_ema'].synthesis(io_['ws'])) > 1e-3


def test_extras(snapshot):
    _, net, _ = snapshot
    assert 0 <= net['augment_p'] <= 1
    assert net['augment_kwargs']['xflip'] == 1
    assert net['training_set_kwargs']['resolution'] == 32


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_code_execution_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    payload = pickle.dumps({'G': _Evil(marker)}, protocol=2)
    with pytest.raises(torch_pickle.UnsafePickleError, match=r'(posix|os)\.system'):
        nvidia.load_network_pkl(io.BytesIO(payload))
    assert not marker.exists()


def test_globals_outside_allow_list_are_refused_everywhere(tmp_path, snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    # A global swapped into the top level...
    bad = rewrite_strings(data, {'OrderedDict': 'Counter'})
    with pytest.raises(torch_pickle.UnsafePickleError, match='collections.Counter'):
        nvidia.load_network_pkl(io.BytesIO(bad))
    # ...and one inside a storage's torch.save stream (also parsed with the restricted unpickler).
    evil_storage = b''.join(pickle.dumps(v, protocol=2) for v in (0x1950a86a20f9469cfc6c, 1001)) + \
        pickle.dumps(_Evil(tmp_path / 'pwned2'), protocol=2)
    with pytest.raises(torch_pickle.UnsafePickleError):
        torch_pickle.load_storage_bytes(evil_storage)
    assert not (tmp_path / 'pwned2').exists()


def test_truncated_file_gives_clear_error(tmp_path, snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    for size in (10, len(data) // 2, len(data) - 5):
        with pytest.raises(pickle.UnpicklingError, match='truncated or corrupt'):
            nvidia.load_network_pkl(io.BytesIO(data[:size]))


def test_numpy_1x_names_load(snapshot):
    path, net, io_ = snapshot
    data = path.read_bytes()
    assert b'numpy._core.multiarray' in data
    old = rewrite_strings(data, {'numpy._core.multiarray': 'numpy.core.multiarray'})
    assert b'numpy._core.multiarray' not in old and b'numpy.core.multiarray' in old
    net_old = nvidia.load_network_pkl(io.BytesIO(old))
    assert max_abs(net_old['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL


def test_unknown_classes_are_named(snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    with pytest.raises(ValueError, match="unknown class 'Gen3rator'"):
        nvidia.load_network_pkl(io.BytesIO(rewrite_strings(data, {'Generator': 'Gen3rator'})))
    with pytest.raises(ValueError, match=r"unknown classes \['WeirdLayer'\]"):
        nvidia.load_network_pkl(io.BytesIO(rewrite_strings(data, {'FullyConnectedLayer': 'WeirdLayer'})))


def _zip_storage(array, storage_name):
    """A torch.save(storage) zip archive, written by hand."""
    # data.pkl: BINPERSID of ('storage', torch.<name>, '0', 'cpu', numel), as torch.save writes it.
    body = (b'\x80\x02(X\x07\x00\x00\x00storagectorch\n' + storage_name.encode() + b'\nX\x01\x00\x00\x000X\x03\x00'
            b'\x00\x00cpu' + b'J' + int(array.size).to_bytes(4, 'little') + b'tQ.')
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as z:
        z.writestr('archive/data.pkl', body)
        z.writestr('archive/byteorder', 'little')
        z.writestr('archive/data/0', array.tobytes())
    return out.getvalue()


@pytest.mark.parametrize('dtype, name', [(np.float32, 'FloatStorage'), (np.float16, 'HalfStorage'),
                                         (np.int64, 'LongStorage'), (np.uint8, 'ByteStorage'),
                                         (np.bool_, 'BoolStorage')])
def test_zip_storage_dtypes(dtype, name):
    array = (np.arange(7) % 3).astype(dtype)
    storage = torch_pickle.load_storage_bytes(_zip_storage(array, name))
    assert storage.array.dtype == np.dtype(dtype) and np.array_equal(storage.array, array)


def test_bfloat16_storage():
    values = np.array([1.0, -2.5, 0.15625], np.float32)
    raw = (values.view(np.uint32) >> 16).astype(np.uint16)
    storage = torch_pickle.load_storage_bytes(_zip_storage(raw, 'BFloat16Storage'))
    assert np.allclose(storage.array, values, rtol=1e-2)


def test_strided_tensor_rebuild():
    storage = torch_pickle.Storage(np.arange(12, dtype=np.float32))
    t = torch_pickle._rebuild_tensor_v2(storage, 1, (2, 3), (1, 2))     # A transposed view.
    assert np.array_equal(t, np.array([[1, 3, 5], [2, 4, 6]], np.float32))
    with pytest.raises(pickle.UnpicklingError, match='past its storage'):
        torch_pickle._rebuild_tensor_v2(storage, 5, (4, 4), (4, 1))


def test_import_cli_and_load_network(tmp_path, snapshot):
    path, net, io_ = snapshot
    out = tmp_path / 'imported'
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.import_network', f'--pkl={path}', f'--out={out}'],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'imported G, D, G_ema' in result.stdout
    meta = json.loads((out / 'networks.json').read_text())
    assert meta['format'] == 'afgan_tf-network' and meta['extras']['architecture'] == 'stylegan3-t'
    loaded = network_io.load_network(out)
    assert max_abs(loaded['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    assert max_abs(loaded['D'](nhwc(io_['img'])), io_['d_logits']) < TOL
    assert loaded['augment_p'] == pytest.approx(net['augment_p'])
    # Existing output: refused without --force, no partial output.
    again = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.import_network', f'--pkl={path}', f'--out={out}'],
                           capture_output=True, text=True, env=env)
    assert again.returncode != 0 and 'exists' in again.stderr
    # A refused pickle: non-zero exit, nothing written.
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps({'G': _Evil(tmp_path / 'pwned3')}, protocol=2))
    bad = subprocess.run([sys.executable, '-m', 'afgan_tf.cli.import_network', f'--pkl={evil}',
                          f'--out={tmp_path / "x"}'], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and 'refusing to load global' in bad.stderr
    assert not (tmp_path / 'x').exists() and not (tmp_path / 'pwned3').exists()


def test_load_network_dispatch(tmp_path, snapshot):
    path, _, io_ = snapshot
    assert max_abs(network_io.load_network(path)['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    with pytest.raises(FileNotFoundError):
        network_io.load_network(tmp_path / 'missing')
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(ValueError, match='unknown network format'):
        network_io.load_network(tmp_path / 'notes.txt')
    with pytest.raises(ValueError, match='without networks.json'):
        network_io.load_network(tmp_path)
    with pytest.raises(FileExistsError):
        network_io.save_network(tmp_path, {})
