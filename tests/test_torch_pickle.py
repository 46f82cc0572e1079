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


# ------------------------------------------------------------------------------------------------
# Hostile files: bounds of tensors and allocations, and a seeded fuzz of every reader.

import json  # noqa: E402
import pickletools  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402

from conftest import ScriptModuleStandIn, write_torch_state_dict  # noqa: E402

FUZZ_WORKER = os.path.join(os.path.dirname(__file__), 'reader_fuzz_worker.py')
ADDRESS_LIMIT = 2 << 30
HOSTILE_INTS = [-1, -3, 0, 1, 7, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 2, 2 ** 40, 2 ** 62, -2 ** 63, 10 ** 30]


def _int_op(value):
    if 0 <= value < 256:
        return b'K' + bytes([value])
    if 0 <= value < 65536:
        return b'M' + struct.pack('<H', value)
    if -2 ** 31 <= value < 2 ** 31:
        return b'J' + struct.pack('<i', value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)
    return b'\x8a' + bytes([len(raw)]) + raw


def _reemit(data, index, replacement):
    """The pickle ``data`` with op number ``index`` replaced by the bytes ``replacement`` (FRAMEs dropped)."""
    ops = list(pickletools.genops(data))
    out = bytearray()
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        if op.name == 'FRAME':
            continue
        out += replacement if i == index else data[pos:end]
    return bytes(out)


def _ops(data, names):
    try:
        return [i for i, (op, _, _) in enumerate(pickletools.genops(data)) if op.name in names]
    except ValueError:                  # Not a pickle stream (a storage's raw bytes): no ops to mutate.
        return []


INT_OPS = ('BININT', 'BININT1', 'BININT2', 'LONG1', 'BININT4')


def _mutate_pickle(data, rng):
    """A mutated pickle stream: an int made hostile, a truncation, flipped bytes or deep nesting."""
    kind = int(rng.integers(4))
    ints = _ops(data, INT_OPS)
    if kind in (0, 3) and not ints:
        kind = 2
    if kind == 0:
        return _reemit(data, ints[int(rng.integers(len(ints)))], _int_op(HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))]))
    if kind == 1:
        return data[:int(rng.integers(1, len(data)))]
    if kind == 2:
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            out[int(rng.integers(len(out)))] = int(rng.integers(256))
        return bytes(out)
    depth = 20000                       # A valid pickle nested far deeper than any network.
    return b'\x80\x02' + b']' * depth + b'a' * (depth - 1) + b'.'


def _zip_members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i, z.read(i)) for i in z.infolist()]


def _rezip(members):
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as z:
        for info, raw in members:
            z.writestr(info, raw)
    return out.getvalue()


def _mutate_zip(data, rng):
    """A mutated torch.save / TorchScript zip: its data.pkl mutated, a member's declared size made hostile,
    or a storage member replaced by a decompression bomb."""
    kind = int(rng.integers(3))
    members = _zip_members(data)
    if kind == 0:
        return _rezip([(i, _mutate_pickle(raw, rng) if i.filename.endswith('data.pkl') else raw) for i, raw in members])
    if kind == 1:
        out = bytearray(data)
        spots = [m.start() for m in __import__('re').finditer(b'PK\x01\x02', data)]
        spot = spots[int(rng.integers(len(spots)))]
        out[spot + 24:spot + 28] = struct.pack('<I', [0, 7, 2 ** 31 - 1, 2 ** 32 - 1][int(rng.integers(4))])
        return bytes(out)
    storages = [k for k, (i, _) in enumerate(members) if '/data/' in i.filename]
    k = storages[int(rng.integers(len(storages)))]
    info = zipfile.ZipInfo(members[k][0].filename)
    info.compress_type = zipfile.ZIP_DEFLATED
    members[k] = (info, b'\x00' * (64 << 20))
    return _rezip(members)


def _mutate_legacy(data, rng):
    """A mutated legacy torch.save stream: its pickles, or a storage's element count made hostile."""
    if rng.integers(2) or len(data) < 32:
        return _mutate_pickle(data, rng)
    out = bytearray(data)                               # Each storage: an 8-byte count, then its bytes.
    pos = int(rng.integers(len(data) // 2, len(data) - 8))
    out[pos:pos + 8] = struct.pack('<q', HOSTILE_INTS[int(rng.integers(len(HOSTILE_INTS)))] % (2 ** 63))
    return bytes(out)


def _mutate_network_pickle(data, rng):
    """A mutated NVIDIA network pickle: its own ints (tensor offsets, sizes, strides, kwargs), or one of the
    torch.save blobs inside it."""
    if rng.integers(3):
        return _mutate_pickle(data, rng)
    blobs = [i for i, (op, arg, _) in enumerate(pickletools.genops(data)) if op.name in ('BINBYTES', 'SHORT_BINBYTES')]
    i = blobs[int(rng.integers(len(blobs)))]
    blob = list(pickletools.genops(data))[i][1]
    mutated = _mutate_zip(blob, rng) if blob[:2] == b'PK' else _mutate_legacy(blob, rng)
    return _reemit(data, i, b'B' + struct.pack('<I', len(mutated)) + mutated)


def _base_files(tmp_path, snapshot):
    rng = np.random.default_rng(0)
    tensors = {'w': rng.standard_normal([6, 5]).astype(np.float32), 'b': rng.standard_normal([5]).astype(np.float32),
               'n': np.arange(4, dtype=np.int64), 'h': rng.standard_normal([3, 2]).astype(np.float16)}
    files = [(str(snapshot[0]), 'pkl', _mutate_network_pickle)]
    files.append((str(write_torch_state_dict(tmp_path / 'zip.pth', tensors)), 'pth', _mutate_zip))
    files.append((str(write_torch_state_dict(tmp_path / 'legacy.pth', tensors, legacy=True)), 'pth', _mutate_legacy))
    module = ScriptModuleStandIn('net.M', weight=tensors['w'], child=ScriptModuleStandIn('net.C', bias=tensors['b']))
    files.append((str(write_torch_state_dict(tmp_path / 'script.pt', module, code={'__torch__.py': 'x'})), 'script',
                  _mutate_zip))
    return files


def run_reader_fuzz(cases):
    """{index: (result, detail)} and the peak address space of the workers (a signal death: 'signal')."""
    results, peak, start = {}, 0, 0
    while start < len(cases):
        args = [a for path, kind in cases[start:] for a in (path, kind)]
        proc = subprocess.run([sys.executable, FUZZ_WORKER, str(ADDRESS_LIMIT), *args], capture_output=True,
                              text=True, timeout=900)
        last = None
        for line in proc.stdout.splitlines():
            if line.startswith('start '):
                last = start + int(line.split()[1])
            elif line.startswith('peak '):
                peak = max(peak, int(line.split()[1]))
            elif line.startswith('{'):
                entry = json.loads(line)
                results[start + entry['i']] = (entry['result'], entry['detail'])
        if proc.returncode == 0:
            break
        if last is None:
            raise AssertionError(f'the fuzz worker failed before any case: {proc.stderr[-2000:]}')
        results[last] = ('signal', f'exit {proc.returncode}: {proc.stderr[-300:]}')
        start = last + 1
    return results, peak


def test_reader_fuzz_no_signal_bounded_memory(tmp_path, snapshot):
    """At least 200 mutated .pkl / .pth (zip and legacy) / TorchScript files: each loads values that all come from
    its own storages or fails with a clear error; no signal; the workers' peak address space stays under 2 GiB."""
    rng = np.random.default_rng(20261201)
    cases, expected = [], []
    for path, kind, mutate in _base_files(tmp_path, snapshot):
        cases.append((path, kind))
        expected.append('loaded')
        data = open(path, 'rb').read()
        for j in range(55):
            target = tmp_path / f'{kind}-{len(cases)}.bin'
            target.write_bytes(mutate(data, rng))
            cases.append((str(target), kind))
            expected.append(None)
    results, peak = run_reader_fuzz(cases)
    assert len(results) == len(cases) >= 200
    assert all(results[i][0] == 'loaded' for i, e in enumerate(expected) if e), [results[i] for i, e in
                                                                                enumerate(expected) if e]
    bad = {cases[i][0]: r for i, r in results.items() if r[0] in ('bad', 'signal')}
    assert not bad, bad
    kinds = [r[0] for r in results.values()]
    assert kinds.count('error') > 100 and peak < ADDRESS_LIMIT, (kinds.count('error'), peak)


def _tensor_pickle(offset, size, stride, numel=12):
    """A pickle of one tensor (_rebuild_tensor_v2 of a zip storage of ``numel`` floats) with these arguments."""
    storage = _zip_storage(np.arange(numel, dtype=np.float32), 'FloatStorage')
    ints = lambda values: b'(' + b''.join(_int_op(v) for v in values) + b't'       # MARK ... TUPLE.
    return (b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\n('
            b'ctorch.storage\n_load_from_bytes\nB' + struct.pack('<I', len(storage)) + storage + b'\x85R'
            + _int_op(offset) + ints(size) + ints(stride) + b'tR.')


@pytest.mark.parametrize('offset,size,stride,message', [
    (0, (3, 4), (-1, 1), 'integers >= 0'),                 # Negative stride: read before the buffer.
    (-3, (2,), (1,), 'integers >= 0'),                     # Negative offset: read past the end.
    (0, (4, 4), (4, 1), 'past its storage'),
    (0, (1000, 1000), (0, 0), 'stride 0 or overlapping'),   # One element claiming a million.
    (0, (2 ** 40,), (1,), 'past its storage'),
])
def test_hostile_tensor_arguments_are_refused(offset, size, stride, message):
    with pytest.raises(pickle.UnpicklingError, match=message):
        torch_pickle.load(io.BytesIO(_tensor_pickle(offset, size, stride)))
    ok = torch_pickle.load(io.BytesIO(_tensor_pickle(1, (2, 3), (1, 2))))           # A transposed view still loads.
    assert np.array_equal(ok, np.array([[1, 3, 5], [2, 4, 6]], np.float32))


def test_claimed_sizes_do_not_allocate(tmp_path):
    """A 263-byte legacy file claiming a 1 GiB storage, and a 200 KB zip whose member inflates to 256 MiB,
    fail before allocating; every load stays within its budget."""
    import resource
    tensors = {'w': np.ones([2, 2], np.float32)}
    legacy = write_torch_state_dict(tmp_path / 'l.pth', tensors, legacy=True).read_bytes()
    huge = legacy.replace(struct.pack('<q', 4), struct.pack('<q', 2 ** 28))                 # The count field ...
    claim = huge.replace(b'K\x04t', b'J' + struct.pack('<i', 2 ** 28) + b't')              # ... and the numel.
    assert claim != legacy and len(claim) < 400
    (tmp_path / 'claim.pth').write_bytes(claim)
    members = _zip_members(write_torch_state_dict(tmp_path / 'z.pth', tensors).read_bytes())
    with zipfile.ZipFile(tmp_path / 'bomb.pth', 'w', compression=zipfile.ZIP_DEFLATED) as z:
        for info, raw in members:
            if '/data/' not in info.filename:
                z.writestr(info.filename, raw)
                continue
            with z.open(info.filename, 'w', force_zip64=True) as member:      # 256 MiB of zeros, streamed.
                for _ in range(256):
                    member.write(bytes(1 << 20))
    assert (tmp_path / 'bomb.pth').stat().st_size < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(pickle.UnpicklingError):
        torch_pickle.load_torch_save(tmp_path / 'claim.pth')
    with pytest.raises(pickle.UnpicklingError, match='holds 268435456 bytes|decompression bomb|more than'):
        torch_pickle.load_torch_save(tmp_path / 'bomb.pth')
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 << 10    # KiB: less than 100 MiB.


def test_readers_refuse_fifos_devices_and_corrupt_streams(tmp_path):
    fifo = tmp_path / 'fifo.pth'
    os.mkfifo(fifo)
    with pytest.raises(pickle.UnpicklingError, match='not a regular file'):
        torch_pickle.load_torch_save(fifo)                  # Would block forever on open().
    (tmp_path / 'zero.pth').symlink_to('/dev/zero')
    with pytest.raises(pickle.UnpicklingError, match='not a regular file'):
        torch_pickle.load_torch_save(tmp_path / 'zero.pth')
    members = _zip_members(write_torch_state_dict(tmp_path / 'z.pth', {'w': np.ones(64, np.float32)}).read_bytes())
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', compression=zipfile.ZIP_DEFLATED) as z:
        for info, raw in members:
            z.writestr(info.filename, raw)
    data = bytearray(out.getvalue())
    start = data.index(b'data/0') + len('data/0')            # Corrupt the deflate stream of the storage.
    data[start + 2:start + 12] = b'\xff' * 10
    (tmp_path / 'deflate.pth').write_bytes(bytes(data))
    with pytest.raises(pickle.UnpicklingError, match='not a readable torch.save file'):
        torch_pickle.load_torch_save(tmp_path / 'deflate.pth')
    root = io.BytesIO()
    with zipfile.ZipFile(root, 'w') as z:
        z.writestr('archive/data.pkl', pickle.dumps([1, 2], protocol=2))
        z.writestr('archive/code/__torch__.py', 'x')
    (tmp_path / 'notmodule.pt').write_bytes(root.getvalue())
    with pytest.raises(pickle.UnpicklingError, match='root is a list, not a module'):
        torch_pickle.load_torchscript(tmp_path / 'notmodule.pt')
