"""Worker of the reader fuzz test (tests/test_torch_pickle.py): loads files with afgan_tf.torch_pickle under an
address-space limit, without TensorFlow.

    python tests/reader_fuzz_worker.py LIMIT_BYTES FILE KIND [FILE KIND ...]

KIND is 'pkl' (a network pickle: load + every module's state dict), 'pth' (torch.save) or 'script'
(TorchScript). For each file it prints ``start <i>`` before and one JSON line after: ``{"i", "result":
"loaded" | "error" | "bad", "detail"}``. 'loaded' also checks that every array it returned holds only values
of the storages this very load read from the file (nothing from outside a buffer); 'error' is a clear error
(pickle.UnpicklingError, ValueError); 'bad' anything else. The last line is ``peak <VmPeak bytes>``.
A signal death leaves ``start <i>`` as the last line, which pins the file.
"""

import importlib.util
import json
import pickle
import resource
import sys
import types

import numpy as np


def _import_torch_pickle():
    """afgan_tf.torch_pickle without running afgan_tf/__init__.py (which imports TensorFlow)."""
    spec = importlib.util.find_spec('afgan_tf')
    package = types.ModuleType('afgan_tf')
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules['afgan_tf'] = package
    from afgan_tf import torch_pickle
    return torch_pickle


def _arrays(obj, out, depth=0):
    if depth > 200:
        return
    if isinstance(obj, np.ndarray):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _arrays(v, out, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _arrays(v, out, depth + 1)
    elif hasattr(obj, 'state') and isinstance(obj.state, dict):
        _arrays(obj.state, out, depth + 1)
    elif hasattr(obj, 'attributes') and isinstance(obj.attributes, dict):
        _arrays(obj.attributes, out, depth + 1)


UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _bits(array):
    """The elements' bit patterns as unsigned integers (compared by value, whatever the dtype)."""
    a = np.ascontiguousarray(array).reshape(-1)
    return a.view(UINT[a.itemsize]) if a.itemsize in UINT else a.view(np.uint8)


def main(argv):
    limit = int(argv[0])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch_pickle = _import_torch_pickle()
    storages = []
    original = torch_pickle._array_from_bytes

    def recording(raw, dtype):
        array = original(raw, dtype)
        storages.append(array)
        return array
    torch_pickle._array_from_bytes = recording
    for i, (path, kind) in enumerate(zip(argv[1::2], argv[2::2])):
        print(f'start {i}', flush=True)
        storages.clear()
        try:
            if kind == 'pkl':
                with open(path, 'rb') as f:
                    data = torch_pickle.load(f)
                result = [torch_pickle.module_state_dict(v) for v in data.values()
                          if isinstance(v, torch_pickle.PersistentObject)] if isinstance(data, dict) else data
            elif kind == 'pth':
                result = torch_pickle.load_torch_save(path)
            else:
                result = torch_pickle.script_module_tensors(torch_pickle.load_torchscript(path))
            found = []
            _arrays(result, found)
            known = {}
            for s in storages:
                known.setdefault(s.dtype.itemsize, []).append(_bits(s))
            loaded = {}
            for a in found:
                if a.size and a.dtype.kind in 'fiub':
                    loaded.setdefault(a.itemsize, []).append(_bits(a))
            outside = 0
            for size, parts in loaded.items():         # One set comparison per element size.
                values = np.concatenate(parts)
                if size not in known:
                    outside += values.size
                    continue
                pool = np.unique(np.concatenate(known[size]))
                at = np.minimum(np.searchsorted(pool, values), pool.size - 1)
                outside += int(np.sum(pool[at] != values))
            line = dict(result='bad' if outside else 'loaded', detail=f'{outside} values not from the file\'s storages'
                        if outside else f'{len(found)} arrays')
        except (pickle.UnpicklingError, ValueError) as e:
            cause = e.__cause__ or e.__context__
            line = dict(result='bad' if isinstance(cause, MemoryError) else 'error',
                        detail=f'{type(e).__name__}: {str(e)[:200]}' + (' (MemoryError)' if isinstance(cause, MemoryError)
                                                                         else ''))
        except BaseException as e:  # noqa: BLE001 - the fuzz reports anything else as a failure.
            line = dict(result='bad', detail=f'{type(e).__name__}: {str(e)[:200]}')
        print(json.dumps(dict(i=i, **line)), flush=True)
    with open('/proc/self/status') as f:
        peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith('VmPeak:'))
    print(f'peak {peak}', flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
