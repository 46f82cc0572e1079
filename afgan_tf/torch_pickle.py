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

Hostile files cannot make the readers read outside a buffer or allocate without bound: every
tensor's size, strides and offset are checked against its storage (64-bit, Python integers)
before a view is made, and everything a file makes the reader allocate (tensor copies, storage
bytes, inflated zip members) counts against a budget of ``max(MIN_BUDGET, BUDGET_RATIO * the
file's size)``, checked *before* the allocation, from the sizes the file declares.
"""

import collections
import contextlib
import contextvars
import io
import pickle
import zipfile
import zlib

import numpy as np

# torch storage classes -> numpy dtype.
STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'HalfStorage': np.float16, 'DoubleStorage': np.float64,
    'BFloat16Storage': 'bfloat16', 'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_, 'UntypedStorage': np.uint8,
}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001

# What a file may make the reader allocate (tensor copies, storage bytes, inflated members), in bytes:
# max(MIN_BUDGET, BUDGET_RATIO * file size). Real network files need about 2x their size (the bytes, then the
# arrays); a zip member inflating to more than this is a decompression bomb.
MIN_BUDGET = 64 << 20
BUDGET_RATIO = 8
MAX_DEPTH = 100             # Nesting of pickled containers and module trees (deeper is refused, not recursed).


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


class StorageStub:
    """A storage's dtype and size without its bytes (the first pass over a legacy torch.save stream)."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel = dtype, numel


def _storage_pid(pid):
    """(kind, storage type, key, numel) of a storage's persistent id, checked."""
    if not isinstance(pid, tuple) or len(pid) < 5:
        raise pickle.UnpicklingError(f'unsupported persistent id {pid!r:.100}')
    kind, storage_type, key, _location, numel = pid[:5]
    if kind != 'storage':
        raise pickle.UnpicklingError(f'unsupported persistent id {pid!r:.100}')
    if not isinstance(key, (str, int)) or not _is_count(numel):
        raise pickle.UnpicklingError(f'malformed storage id {pid!r:.100}')
    return kind, storage_type, str(key), int(numel)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _bfloat16_to_float32(raw):
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _array_from_bytes(raw, dtype):
    _charge(len(raw) * (2 if dtype == 'bfloat16' else 1), 'a tensor storage')
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


class _Budget:
    """Bytes a file may still make the reader allocate."""

    def __init__(self, file_bytes):
        self.limit = max(MIN_BUDGET, BUDGET_RATIO * int(file_bytes))
        self.left = self.limit

    def charge(self, nbytes, what):
        nbytes = int(nbytes)
        if nbytes < 0 or nbytes > self.left:
            raise pickle.UnpicklingError(f'{what} needs {nbytes} bytes, more than the file can justify (at most '
                                         f'{self.limit} bytes for this file; its declared sizes are not plausible)')
        self.left -= nbytes


_BUDGET = contextvars.ContextVar('afgan_tf_torch_pickle_budget', default=None)


@contextlib.contextmanager
def _budget(file_bytes):
    """The allocation budget of one file read (nested reads, e.g. storages inside a pickle, share it)."""
    if _BUDGET.get() is not None:
        yield _BUDGET.get()
        return
    token = _BUDGET.set(_Budget(file_bytes))
    try:
        yield _BUDGET.get()
    finally:
        _BUDGET.reset(token)


def _charge(nbytes, what):
    budget = _BUDGET.get()
    if budget is None:              # A direct call outside a file read: bounded by the minimum budget.
        budget = _Budget(0)
    budget.charge(nbytes, what)


def _itemsize(dtype):
    return 2 if dtype == 'bfloat16' else np.dtype(dtype).itemsize


def _read_member(archive, name, nbytes=None):
    """A zip member's bytes, charged to the budget before anything is inflated. With ``nbytes``, the member must
    declare exactly that many bytes (a storage's)."""
    from afgan_tf.safe_files import read_zip_member
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise pickle.UnpicklingError(f'the archive has no member {name!r}') from None
    if nbytes is not None and info.file_size != nbytes:
        raise pickle.UnpicklingError(f'tensor storage {name} holds {info.file_size} bytes, its tensors declare {nbytes}')
    budget = _BUDGET.get() or _Budget(0)
    try:
        data = read_zip_member(archive, info, budget.left)
    except ValueError as e:
        raise pickle.UnpicklingError(f'{e} (at most {budget.limit} bytes for this file)') from None
    budget.charge(len(data), f'archive member {name}')
    if len(data) != info.file_size:
        raise pickle.UnpicklingError(f'archive member {name} is truncated')
    return data


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
        kind, storage_type, key, numel = _storage_pid(pid)
        return key, _storage_dtype(storage_type), numel

    def placeholder(pid):                       # First pass: sizes only, nothing allocated.
        key, dtype, numel = storage_id(pid)
        if records.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise pickle.UnpicklingError(f'storage {key!r} is declared twice with different sizes')
        return StorageStub(dtype, numel)
    _RestrictedUnpickler(f, allowed, placeholder).load()
    arrays = {}
    for key in header():
        if key not in records or key in arrays:
            raise pickle.UnpicklingError(f'torch.save stream lists an unknown or repeated storage {key!r}')
        dtype, numel = records[key]
        count = int.from_bytes(f.read(8), 'little')
        nbytes = count * _itemsize(dtype)
        if count != numel or nbytes > len(data) - f.tell():
            raise pickle.UnpicklingError('tensor storage bytes are truncated (the stream declares more bytes than '
                                         'it holds)')
        arrays[key] = _array_from_bytes(f.read(nbytes), dtype)
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

    cache = {}

    def persistent(pid):
        _, storage_type, key, numel = _storage_pid(pid)
        dtype = _storage_dtype(storage_type)
        if key not in cache:
            cache[key] = (Storage(_array_from_bytes(_read_member(archive, f'{prefix}data/{key}',
                                                                 numel * _itemsize(dtype)), dtype)), numel)
        storage, stored = cache[key]
        if stored != numel:
            raise pickle.UnpicklingError(f'storage {key!r} is declared with two sizes')
        return storage
    return pkl, persistent


def _load_zip(data, allowed):
    """A ``torch.save`` zip archive (bytes) -> the saved object."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        pkl, persistent = _zip_pickle(archive, 'torch.save archive')
        prefix = pkl[:-len('data.pkl')]
        byteorder = _read_member(archive, prefix + 'byteorder') if prefix + 'byteorder' in names else b'little'
        if byteorder != b'little':
            raise pickle.UnpicklingError('big-endian tensor storages are not supported')
        return _RestrictedUnpickler(io.BytesIO(_read_member(archive, pkl)), allowed, persistent).load()


def _load_zip_storage(data):
    """``torch.save(storage)`` zip archive -> Storage."""
    result = _load_zip(data, _TORCH_SAVE_GLOBALS)
    if not isinstance(result, Storage):
        raise pickle.UnpicklingError('torch.save data does not hold a storage')
    return result


def load_storage_bytes(data):
    """The bytes of ``torch.storage._load_from_bytes`` (zip or legacy ``torch.save``) -> Storage."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError(f'a storage must be bytes, got {type(data).__name__}')
    if data[:4] == b'PK\x03\x04':
        return _load_zip_storage(data)
    return _load_legacy_storage(data)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """A tensor of ``storage`` (a numpy copy). Offset, sizes and strides are checked in Python integers against
    the storage before any view is made: negative values, a tensor reaching past its storage and a tensor with
    more elements than its storage (stride 0 or overlapping strides) are refused."""
    del requires_grad, backward_hooks, metadata
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or len(size) != len(stride) \
            or len(size) > 64:
        raise pickle.UnpicklingError(f'tensor size {size!r:.100} and stride {stride!r:.100} do not match')
    if not all(_is_count(v) for v in (storage_offset, *size, *stride)):
        raise pickle.UnpicklingError(f'tensor offset, size and stride must be integers >= 0, got {storage_offset!r:.50}, '
                                     f'{size!r:.100}, {stride!r:.100}')
    size, stride = tuple(size), tuple(stride)
    numel = 1
    for s in size:
        numel *= s
    if isinstance(storage, StorageStub):        # First pass of a legacy stream: no data yet.
        total, array = storage.numel, None
    elif isinstance(storage, Storage):
        array = storage.array
        total = array.size
    else:
        raise pickle.UnpicklingError(f'a tensor of {type(storage).__name__}, not a storage')
    if numel == 0:
        return None if array is None else np.zeros(size, array.dtype)
    last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= total:
        raise pickle.UnpicklingError(f'tensor extends past its storage (element {last} of {total})')
    if numel > total:
        raise pickle.UnpicklingError(f'a tensor of {numel} elements in a storage of {total} (stride 0 or overlapping '
                                     'strides): refused')
    if array is None:
        return None
    _charge(numel * array.itemsize, 'a tensor')
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


# What a malformed file can raise while it is parsed (zlib.error: a corrupt deflate stream; RecursionError: nesting).
CORRUPT_ERRORS = (EOFError, pickle.UnpicklingError, ValueError, KeyError, IndexError, TypeError, AttributeError,
                  zipfile.BadZipFile, zlib.error, MemoryError, RecursionError, OverflowError, NotImplementedError,
                  UnicodeDecodeError)


def _reason(error):
    if isinstance(error, pickle.UnpicklingError):
        return str(error)[:300]
    return f'{type(error).__name__}: {str(error)[:300]}'


MAX_FILE_BYTES = 16 << 30   # A network or weights file larger than this is refused before it is read.


def _read_regular_file(path):
    from afgan_tf.safe_files import NotARegularFile, read_regular_file
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except NotARegularFile as e:
        raise pickle.UnpicklingError(str(e)) from None


def load_torch_save(path):
    """Reads a ``torch.save`` file of tensors (a state dict, say), in either format, without PyTorch.

    Tensors become numpy arrays; only storages, tensors, parameters and ordered dicts are allowed
    (``UnsafePickleError`` names anything else). ``pickle.UnpicklingError`` for a corrupt file.
    """
    data = _read_regular_file(path)
    try:
        with _budget(len(data)):
            return _load_zip(data, _STATE_DICT_GLOBALS) if data[:4] == b'PK\x03\x04' else \
                _load_legacy(data, _STATE_DICT_GLOBALS)
    except UnsafePickleError:
        raise
    except CORRUPT_ERRORS as e:
        raise pickle.UnpicklingError(f'{path}: not a readable torch.save file: {_reason(e)}') from e


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
    from afgan_tf.safe_files import read_at_most
    data = read_at_most(file, MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise pickle.UnpicklingError(f'more than {MAX_FILE_BYTES} bytes: larger than any network pickle')
    try:
        with _budget(len(data)):
            return _RestrictedUnpickler(io.BytesIO(data), ALLOWED_GLOBALS).load()
    except UnsafePickleError:
        raise
    except CORRUPT_ERRORS as e:
        raise pickle.UnpicklingError(f'truncated or corrupt network pickle: {_reason(e)}') from e


def module_state_dict(obj, prefix='', depth=0):
    """``{name: numpy array}`` of a pickled torch module (parameters and persistent buffers)."""
    if not isinstance(obj, PersistentObject):
        raise TypeError(f'expected a pickled module, got {type(obj).__name__}')
    if depth > MAX_DEPTH:
        raise ValueError(f'the pickled module tree is nested more than {MAX_DEPTH} deep')
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
            out.update(module_state_dict(child, f'{prefix}{name}.', depth + 1))
    return out


def module_classes(obj, depth=0):
    """Class names of a pickled module and all its submodules."""
    if depth > MAX_DEPTH:
        raise ValueError(f'the pickled module tree is nested more than {MAX_DEPTH} deep')
    names = {obj.class_name}
    for child in (obj.state.get('_modules') or {}).values():
        if isinstance(child, PersistentObject):
            names |= module_classes(child, depth + 1)
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
    data = _read_regular_file(path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as e:
        raise pickle.UnpicklingError(f'{path}: not a TorchScript archive ({e})') from e
    with archive, _budget(len(data)):
        try:
            pkl, persistent = _zip_pickle(archive, f'{path}: not a TorchScript archive; it')
            root = _ScriptUnpickler(io.BytesIO(_read_member(archive, pkl)), _TORCHSCRIPT_GLOBALS, persistent).load()
        except UnsafePickleError:
            raise
        except CORRUPT_ERRORS as e:
            raise pickle.UnpicklingError(f'{path}: corrupt TorchScript archive: {_reason(e)}') from e
    if not isinstance(root, ScriptModule):
        raise pickle.UnpicklingError(f'{path}: the archive\'s root is a {type(root).__name__}, not a module')
    return root


def script_module_tensors(module, prefix='', depth=0):
    """``{dotted.name: array}`` of every tensor attribute in a ``ScriptModule`` tree."""
    if depth > MAX_DEPTH:
        raise pickle.UnpicklingError(f'the module tree is nested more than {MAX_DEPTH} deep')
    out = {}
    for name, value in module.attributes.items():
        if isinstance(value, ScriptModule):
            out.update(script_module_tensors(value, f'{prefix}{name}.', depth + 1))
        elif isinstance(value, np.ndarray):
            out[prefix + name] = value
    return out
