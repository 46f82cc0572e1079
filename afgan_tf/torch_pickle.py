"""Reads PyTorch-pickled network files without PyTorch and without running their code.

NVIDIA's network pickles hold ``torch.nn.Module`` objects whose classes are rebuilt
from module source text embedded in the file (``torch_utils.persistence``), so a plain
``pickle.load`` executes that code. ``load`` uses a restricted unpickler instead: it
resolves only an allow-list of globals (``ALLOWED_GLOBALS``) to local, side-effect-free
constructors, refuses every other global with ``UnsafePickleError`` naming it, and
turns each persistent object into an inert ``PersistentObject`` record (class name +
state). Tensor storages, which PyTorch pickles as bytes written by ``torch.save``, are
parsed here for both of its formats (the zip archive and the legacy stream) with the
standard library and numpy.
"""

import collections
import io
import pickle
import zipfile

import numpy as np

# torch storage classes -> numpy dtype.
STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'HalfStorage': np.float16, 'DoubleStorage': np.float64,
    'BFloat16Storage': 'bfloat16', 'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_, 'UntypedStorage': np.uint8,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class UnsafePickleError(pickle.UnpicklingError):
    """The file references a global outside the allow-list (it was not resolved or run)."""


class PersistentObject:
    """An object pickled through ``torch_utils.persistence``: its class name and state, nothing run."""

    def __init__(self, meta):
        meta = dict(meta)
        self.class_name = meta.get('class_name')
        self.version = meta.get('version')
        self.state = dict(meta.get('state') or {})
        # meta['module_src'] (Python source) is deliberately ignored: never executed.

    def __repr__(self):
        return f'PersistentObject({self.class_name!r})'


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Storage:
    """A typed, flat tensor storage (numpy array)."""

    def __init__(self, array):
        self.array = array


def _bfloat16_to_float32(raw):
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _array_from_bytes(raw, dtype):
    if dtype == 'bfloat16':
        return _bfloat16_to_float32(raw)
    return np.frombuffer(raw, dtype).copy()


def _storage_dtype(storage_type):
    name = getattr(storage_type, 'storage_name', None)
    if name not in STORAGE_DTYPES:
        raise pickle.UnpicklingError(f'unsupported tensor storage type {storage_type!r}')
    return STORAGE_DTYPES[name]


class _StorageType:
    """Marker for a ``torch.<X>Storage`` global inside ``torch.save`` data."""

    def __init__(self, name):
        self.storage_name = name

    def __repr__(self):
        return f'torch.{self.storage_name}'


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; persistent ids come from ``persistent_load``."""

    def __init__(self, file, allowed, persistent_load=None):
        super().__init__(file)
        self._allowed = allowed
        self._persistent = persistent_load

    def find_class(self, module, name):
        target = self._allowed.get((module, name))
        if target is None:
            raise UnsafePickleError(f'refusing to load global {module}.{name}: not allowed in a network pickle '
                                    '(nothing from the file was executed)')
        return target

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}')
        return self._persistent(pid)


# Globals allowed inside torch.save data (storage classes only).
_TORCH_SAVE_GLOBALS = {('torch', name): _StorageType(name) for name in STORAGE_DTYPES}
_TORCH_SAVE_GLOBALS[('torch.storage', 'UntypedStorage')] = _StorageType('UntypedStorage')
_TORCH_SAVE_GLOBALS[('collections', 'OrderedDict')] = collections.OrderedDict


def _load_legacy(data, allowed):
    """A legacy ``torch.save`` stream (``_use_new_zipfile_serialization=False``) -> the saved object.

    The stream is: magic, protocol, system info, the object's pickle (storages as persistent ids),
    the storage keys, then each storage's raw bytes. The object is unpickled twice: once to learn
    the storages (as zero placeholders), then, with their bytes read, for real.
    """
    f = io.BytesIO(data)
    header = lambda: _RestrictedUnpickler(f, {}).load()     # Plain values only: no globals at all.
    if header() != _LEGACY_MAGIC or header() != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError('not a torch.save stream')
    sys_info = header()
    if not sys_info.get('little_endian', True):
        raise pickle.UnpicklingError('big-endian tensor storages are not supported')
    start = f.tell()
    records = {}

    def storage_id(pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != 'storage':
            raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
        return key, _storage_dtype(storage_type), int(numel)

    def placeholder(pid):
        key, dtype, numel = storage_id(pid)
        records.setdefault(key, (dtype, numel))
        return Storage(np.zeros(numel, np.float32 if dtype == 'bfloat16' else dtype))
    _RestrictedUnpickler(f, allowed, placeholder).load()
    arrays = {}
    for key in header():
        if key not in records:
            raise pickle.UnpicklingError(f'torch.save stream lists an unknown storage {key!r}')
        dtype, numel = records[key]
        count = int.from_bytes(f.read(8), 'little')
        itemsize = 2 if dtype == 'bfloat16' else np.dtype(dtype).itemsize
        raw = f.read(count * itemsize)
        if count != numel or len(raw) != count * itemsize:
            raise pickle.UnpicklingError('tensor storage bytes are truncated')
        arrays[key] = _array_from_bytes(raw, dtype)
    missing = set(records) - set(arrays)
    if missing:
        raise pickle.UnpicklingError(f'torch.save stream lacks the bytes of storages {sorted(missing)}')
    f.seek(start)
    return _RestrictedUnpickler(f, allowed, lambda pid: Storage(arrays[storage_id(pid)[0]])).load()


def _load_legacy_storage(data):
    """``torch.save(storage, _use_new_zipfile_serialization=False)`` stream -> Storage."""
    result = _load_legacy(data, _TORCH_SAVE_GLOBALS)
    if not isinstance(result, Storage):
        raise pickle.UnpicklingError('torch.save data does not hold a storage')
    return result


def _zip_pickle(archive, what):
    """(data.pkl name, persistent_load) of a zip written by torch.save / torch.jit.save."""
    pkl = next((n for n in archive.namelist() if n.endswith('/data.pkl') or n == 'data.pkl'), None)
    if pkl is None:
        raise pickle.UnpicklingError(f'{what} has no data.pkl')
    prefix = pkl[:-len('data.pkl')]

    def persistent(pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != 'storage':
            raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
        array = _array_from_bytes(archive.read(f'{prefix}data/{key}'), _storage_dtype(storage_type))
        if array.size < numel:
            raise pickle.UnpicklingError('tensor storage bytes are truncated')
        return Storage(array[:numel])
    return pkl, persistent


def _load_zip(data, allowed):
    """A ``torch.save`` zip archive (bytes) -> the saved object."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pkl, persistent = _zip_pickle(archive, 'torch.save archive')
        prefix = pkl[:-len('data.pkl')]
        byteorder = archive.read(prefix + 'byteorder').decode() if prefix + 'byteorder' in names else 'little'
        if byteorder != 'little':
            raise pickle.UnpicklingError('big-endian tensor storages are not supported')
        return _RestrictedUnpickler(io.BytesIO(archive.read(pkl)), allowed, persistent).load()


def _load_zip_storage(data):
    """``torch.save(storage)`` zip archive -> Storage."""
    result = _load_zip(data, _TORCH_SAVE_GLOBALS)
    if not isinstance(result, Storage):
        raise pickle.UnpicklingError('torch.save data does not hold a storage')
    return result


def load_storage_bytes(data):
    """The bytes of ``torch.storage._load_from_bytes`` (zip or legacy ``torch.save``) -> Storage."""
    if data[:4] == b'PK\x03\x04':
        return _load_zip_storage(data)
    return _load_legacy_storage(data)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    del requires_grad, backward_hooks, metadata
    array = storage.array
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return array[storage_offset].copy()
    needed = storage_offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1
    if min(size) > 0 and needed > array.size:
        raise pickle.UnpicklingError('tensor extends past its storage')
    view = np.lib.stride_tricks.as_strided(array[storage_offset:], shape=size,
                                           strides=[st * array.itemsize for st in stride], writeable=False)
    return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    return data


# Globals allowed in a saved state dict (tensors, parameters, ordered dicts).
_STATE_DICT_GLOBALS = {
    **_TORCH_SAVE_GLOBALS,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}


def load_torch_save(path):
    """Reads a ``torch.save`` file of tensors (a state dict, say), in either format, without PyTorch.

    Tensors become numpy arrays; only storages, tensors, parameters and ordered dicts are allowed
    (``UnsafePickleError`` names anything else). ``pickle.UnpicklingError`` for a corrupt file.
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return _load_zip(data, _STATE_DICT_GLOBALS) if data[:4] == b'PK\x03\x04' else \
            _load_legacy(data, _STATE_DICT_GLOBALS)
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            zipfile.BadZipFile, MemoryError) as e:
        raise pickle.UnpicklingError(f'{path}: not a readable torch.save file: {type(e).__name__}: {e}') from e


def _numpy_globals():
    try:
        from numpy._core import multiarray
    except ImportError:         # numpy 1.x
        from numpy.core import multiarray
    out = {}
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        out[(module, '_reconstruct')] = multiarray._reconstruct
        out[(module, 'scalar')] = multiarray.scalar
    for module in ('numpy', 'numpy.core.multiarray', 'numpy._core.multiarray'):
        out[(module, 'ndarray')] = np.ndarray
        out[(module, 'dtype')] = np.dtype
    return out


ALLOWED_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): PersistentObject,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch.storage', '_load_from_bytes'): load_storage_bytes,
    ('torch', 'Size'): tuple,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('dnnlib', 'EasyDict'): EasyDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    **_numpy_globals(),
}


def load(file):
    """Unpickles a network pickle from a binary file object with the restricted unpickler.

    Raises:
        UnsafePickleError: a global outside ``ALLOWED_GLOBALS`` is referenced.
        pickle.UnpicklingError: the data is truncated or malformed.
    """
    try:
        return _RestrictedUnpickler(file, ALLOWED_GLOBALS).load()
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            zipfile.BadZipFile, MemoryError) as e:
        raise pickle.UnpicklingError(f'truncated or corrupt network pickle: {type(e).__name__}: {e}') from e


def module_state_dict(obj, prefix=''):
    """``{name: numpy array}`` of a pickled torch module (parameters and persistent buffers)."""
    if not isinstance(obj, PersistentObject):
        raise TypeError(f'expected a pickled module, got {type(obj).__name__}')
    state = obj.state
    out = {}
    for name, value in (state.get('_parameters') or {}).items():
        if value is not None:
            out[prefix + name] = np.asarray(value)
    skip = set(state.get('_non_persistent_buffers_set') or ())
    for name, value in (state.get('_buffers') or {}).items():
        if value is not None and name not in skip:
            out[prefix + name] = np.asarray(value)
    for name, child in (state.get('_modules') or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f'{prefix}{name}.'))
    return out


def module_classes(obj):
    """Class names of a pickled module and all its submodules."""
    names = {obj.class_name}
    for child in (obj.state.get('_modules') or {}).values():
        if isinstance(child, PersistentObject):
            names |= module_classes(child)
    return names


class ScriptModule:
    """A module from a TorchScript archive: its class name and attributes (no code is loaded)."""

    class_name = None
    attributes = {}

    def __setstate__(self, state):
        self.attributes = dict(state)

    def __repr__(self):
        return f'ScriptModule({self.class_name!r})'


class _ScriptUnpickler(_RestrictedUnpickler):
    """Resolves ``__torch__.*`` module classes to inert ``ScriptModule`` records."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._classes = {}

    def find_class(self, module, name):
        if module.startswith('__torch__.'):
            class_name = f'{module}.{name}'
            if class_name not in self._classes:     # An inert subclass per TorchScript class (NEWOBJ needs a type).
                self._classes[class_name] = type(name, (ScriptModule,), {'class_name': class_name})
            return self._classes[class_name]
        return super().find_class(module, name)


_TORCHSCRIPT_GLOBALS = {
    **_TORCH_SAVE_GLOBALS,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch.jit._pickle', 'build_intlist'): list,
    ('torch.jit._pickle', 'build_doublelist'): list,
    ('torch.jit._pickle', 'build_boollist'): list,
    ('torch.jit._pickle', 'build_tensorlist'): list,
}


def load_torchscript(path):
    """Reads a TorchScript archive (``torch.jit.save``) without PyTorch: the module tree, code ignored.

    Returns the root ``ScriptModule``; tensors are numpy arrays in its ``attributes``.
    Raises ``pickle.UnpicklingError`` when the file is not such an archive.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise pickle.UnpicklingError(f'{path}: not a TorchScript archive ({e})') from e
    with archive:
        pkl, persistent = _zip_pickle(archive, f'{path}: not a TorchScript archive; it')
        try:
            return _ScriptUnpickler(io.BytesIO(archive.read(pkl)), _TORCHSCRIPT_GLOBALS, persistent).load()
        except UnsafePickleError:
            raise
        except (EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise pickle.UnpicklingError(f'{path}: corrupt TorchScript archive: {type(e).__name__}: {e}') from e


def script_module_tensors(module, prefix=''):
    """``{dotted.name: array}`` of every tensor attribute in a ``ScriptModule`` tree."""
    out = {}
    for name, value in module.attributes.items():
        if isinstance(value, ScriptModule):
            out.update(script_module_tensors(value, f'{prefix}{name}.'))
        elif isinstance(value, np.ndarray):
            out[prefix + name] = value
    return out
