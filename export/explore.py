"""The back end of ``afgan-explore``: one local page, a generator behind TF Serving's REST API.

The page (``explore.html``, plain HTML and JavaScript, no build step, no CDN) speaks TF Serving's
REST API only: ``GET <api>/metadata`` for the signatures and ``POST <api>:predict`` with the
columnar ``inputs`` format. ``<api>`` is ``/v1/models/<name>`` on this server, which answers it
from one of two back ends:

* ``LocalBackend``: the generator loaded in this process, through the very functions the
  SavedModel export writes (``serving_default``, ``transformed``, ``mapping``, ``synthesis``), so
  the page sees exactly what TF Serving would return;
* ``ServingBackend``: a running TF Serving (``--serving-url http://host:8501/v1/models/NAME``),
  to which metadata and predict requests are forwarded unchanged (the page stays same-origin).

Besides the API, the server answers ``GET /latent?seed=S&dim=D``: the latent of a seed as NVIDIA's
tools draw it (``RandomState(seed).randn(1, D)``), so a seed gives the same image everywhere.
Errors come back as ``{"error": "..."}`` with status 400, as TF Serving's do.
"""

import http.server
import json
import pathlib
import re
import socketserver
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

PAGE = pathlib.Path(__file__).resolve().parent / 'explore.html'
PSI_RANGE = (-1.0, 2.0)          # Truncation psi the explorer accepts (1 = none, 0 = the average w).
MAX_SEED = 2 ** 32 - 1
MAX_BATCH = 16


class RequestError(ValueError):
    """A bad request: answered with status 400 and ``{"error": message}``."""


def seed_latent(seed, dim):
    """z [1, dim] of a seed, as NVIDIA's tools draw it (``RandomState(seed).randn(1, dim)``)."""
    text = str(seed).strip()
    if not re.fullmatch(r'\d+', text) or int(text) > MAX_SEED:
        raise RequestError(f'seed must be an integer in [0, {MAX_SEED}], got {str(seed)[:40]!r}')
    if not re.fullmatch(r'\d+', str(dim)) or not 1 <= int(dim) <= 4096:
        raise RequestError(f'dim must be an integer in [1, 4096], got {str(dim)[:40]!r}')
    return np.random.RandomState(int(text)).randn(1, int(dim)).astype(np.float32)


def _tensor_info(spec):
    """TF Serving's metadata entry of a TensorSpec."""
    dims = [{'size': str(-1 if d is None else d), 'name': ''} for d in spec.shape]
    return {'dtype': f'DT_{spec.dtype.name.upper()}', 'tensor_shape': {'dim': dims, 'unknown_rank': False},
            'name': f'{spec.name}:0'}


def signature_metadata(endpoints):
    """``GET /v1/models/NAME/metadata`` as TF Serving answers it, for ``{name: (tf.function, input specs)}``
    (functions with an input signature; tracing them here is the tracing their first call reuses)."""
    import tensorflow as tf
    signatures = {}
    for name, (fn, specs) in endpoints.items():
        outputs = fn.get_concrete_function().structured_outputs
        signatures[name] = {
            'inputs': {s.name: _tensor_info(s) for s in specs},
            'outputs': {k: _tensor_info(tf.TensorSpec(v.shape, v.dtype, k)) for k, v in outputs.items()},
            'method_name': 'tensorflow/serving/predict'}
    return {'model_spec': {'name': 'generator', 'signature_name': '', 'version': '1'},
            'metadata': {'signature_def': {'signature_def': signatures}}}


class LocalBackend:
    """Answers TF Serving's REST requests with a generator in this process (the export's functions)."""

    def __init__(self, G):
        import tensorflow as tf
        from afgan_tf.export.saved_model import _generator_endpoints
        self.G = G
        self._endpoints = {name: (tf.function(fn, input_signature=specs), specs)
                           for name, (fn, specs) in _generator_endpoints(G).items()}
        self._metadata = signature_metadata(self._endpoints)
        self._lock = threading.Lock()       # One generator call at a time (the server is threaded).

    def metadata(self):
        return self._metadata

    def predict(self, body):
        import tensorflow as tf
        if not isinstance(body, dict) or not isinstance(body.get('inputs'), dict):
            raise RequestError('expected a JSON object with "inputs" (columnar format)')
        name = body.get('signature_name') or 'serving_default'
        if name not in self._endpoints:
            raise RequestError(f'signature_name {name!r} is not one of {sorted(self._endpoints)}')
        fn, specs = self._endpoints[name]
        inputs = body['inputs']
        missing = [s.name for s in specs if s.name not in inputs]
        extra = sorted(set(inputs) - {s.name for s in specs})
        if missing or extra:
            raise RequestError(f'signature {name!r} takes inputs {[s.name for s in specs]}; missing {missing}, '
                               f'unknown {extra}')
        args = []
        for spec in specs:
            try:
                value = np.asarray(inputs[spec.name], np.float32)
            except (TypeError, ValueError):
                raise RequestError(f'{spec.name}: expected numbers') from None
            if not spec.shape.is_compatible_with(value.shape):
                raise RequestError(f'{spec.name}: expected shape {_shape_text(spec.shape)}, got {list(value.shape)}')
            if value.ndim and value.shape[0] > MAX_BATCH:
                raise RequestError(f'{spec.name}: at most {MAX_BATCH} samples per request, got {value.shape[0]}')
            if not np.all(np.isfinite(value)):
                raise RequestError(f'{spec.name} must be finite (no NaN or inf)')
            args.append(tf.constant(value))
        with self._lock:
            outputs = fn(*args)
        return {'outputs': {k: v.numpy().tolist() for k, v in outputs.items()}}


def _shape_text(shape):
    return '[' + ', '.join('N' if d is None else str(d) for d in shape) + ']'


class ServingBackend:
    """Forwards metadata and predict requests to TF Serving at ``url`` (``http://host:8501/v1/models/NAME``)."""

    def __init__(self, url, timeout=120):
        url = url.rstrip('/')
        if not re.fullmatch(r'https?://[^/]+/v1/models/[^/:]+(/versions/\d+|/labels/[^/:]+)?', url):
            raise ValueError(f'serving url must look like http://host:8501/v1/models/NAME, got {url!r}')
        self.url, self.timeout = url, timeout

    def _request(self, url, data=None):
        request = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:   # noqa: S310 (user URL)
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors='replace')
            try:
                message = json.loads(text).get('error', text)
            except ValueError:
                message = text
            raise RequestError(f'TF Serving: {message[:1000]}') from None
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f'TF Serving at {self.url} is not reachable: {e}') from None

    def metadata(self):
        return self._request(f'{self.url}/metadata')

    def predict(self, body):
        return self._request(f'{self.url}:predict', json.dumps(body).encode())


def make_server(backend, host='127.0.0.1', port=8080, model_name='generator', log=None):
    """A threaded HTTP server for the page and the API; call ``serve_forever()`` (or use a thread)."""
    page = PAGE.read_bytes()
    api = f'/v1/models/{model_name}'

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, status, body, content_type='application/json'):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(data)))
            self.send_header('Cache-Control', 'no-store')
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, fn):
            try:
                self._send(200, fn())
            except RequestError as e:
                self._send(400, {'error': str(e)})
            except ConnectionError as e:
                self._send(502, {'error': str(e)})
            except Exception as e:         # noqa: BLE001 (a generator failure: report it, keep serving)
                self._send(500, {'error': f'{type(e).__name__}: {e}'})

        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlparse(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path in ('/', '/index.html'):
                self._send(200, page, 'text/html; charset=utf-8')
            elif url.path == f'{api}/metadata':
                self._answer(backend.metadata)
            elif url.path == '/latent':
                self._answer(lambda: {'z': seed_latent(query.get('seed', ''), query.get('dim', '')).tolist()})
            elif url.path == '/config':
                self._answer(lambda: {'api': api, 'psi_range': PSI_RANGE, 'max_seed': MAX_SEED})
            else:
                self._send(404, {'error': f'no such path {url.path}'})

        def do_POST(self):  # noqa: N802
            if self.path != f'{api}:predict':
                return self._send(404, {'error': f'no such path {self.path}'})
            try:
                length = int(self.headers.get('Content-Length', 0))
                if not 0 < length <= 64 << 20:
                    raise RequestError('a JSON body of at most 64 MiB is required')
                body = json.loads(self.rfile.read(length))
            except (ValueError, RequestError) as e:
                return self._send(400, {'error': f'bad request body: {e}'})
            self._answer(lambda: backend.predict(body))

        def log_message(self, fmt, *args):
            if log:
                log(f'{self.address_string()} {fmt % args}')

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    return Server((host, port), Handler)
