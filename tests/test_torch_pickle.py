"""afgan_tf.torch_pickle: PyTorch pickles and TorchScript archives read without PyTorch, and never executed."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from afgan_tf import nvidia, torch_pickle
from afgan_tf.metrics import inception


def test_torchscript_reader_refuses_non_archives(tmp_path):
    bad = tmp_path / 'x.pt'
    bad.write_bytes(b'not a zip')
    with pytest.raises(pickle.UnpicklingError, match='not a TorchScript archive'):
        torch_pickle.load_torchscript(str(bad))
    with zipfile.ZipFile(tmp_path / 'y.pt', 'w') as z:
        z.writestr('archive/data.pkl', pickle.dumps(os.system, protocol=2))     # A global outside the allow-list.
    with pytest.raises(torch_pickle.UnsafePickleError):
        torch_pickle.load_torchscript(str(tmp_path / 'y.pt'))
    with pytest.raises(FileNotFoundError, match='path: no such file'):
        inception.load_fid_inception(str(tmp_path / 'missing.pt'))
from conftest import EvilPickle, rewrite_strings


def test_code_execution_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    payload = pickle.dumps({'G': EvilPickle(marker)}, protocol=2)
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
        pickle.dumps(EvilPickle(tmp_path / 'pwned2'), protocol=2)
    with pytest.raises(torch_pickle.UnsafePickleError):
        torch_pickle.load_storage_bytes(evil_storage)
    assert not (tmp_path / 'pwned2').exists()


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
