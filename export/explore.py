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

Safe to leave running on a shared host: every request is checked by ``check_request`` against the
signatures (numbers only, the right shapes, at most MAX_BATCH samples, finite, truncation_psi in
PSI_RANGE) before it reaches a generator or TF Serving; a request's body is capped at what the
largest valid request needs; sockets time out after SOCKET_TIMEOUT seconds; at most MAX_CONNECTIONS
are served at once (others get 503); the Host header must name this server (localhost, an IP
address, or a name given with ``allowed_hosts``, against DNS rebinding); a POST needs
``Content-Type: application/json`` and, if it has an Origin, this server's own (no cross-site
requests); TF Serving's redirects are not followed and its answers are capped at
MAX_UPSTREAM_BYTES and relayed unparsed.
"""

import http.server
import ipaddress
import json
import pathlib
import re
import socketserver
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from afgan_tf.safe_files import read_at_most

PAGE = pathlib.Path(__file__).resolve().parent / 'explore.html'
PSI_RANGE = (-1.0, 2.0)          # Truncation psi the explorer accepts (1 = none, 0 = the average w).
MAX_SEED = 2 ** 32 - 1
MAX_BATCH = 16
SOCKET_TIMEOUT = 15              # Seconds a connection may take to send its request (and to read the answer).
MAX_CONNECTIONS = 8              # Requests served at once; more get 503 at once.
MAX_UPSTREAM_BYTES = 256 << 20   # TF Serving answers larger than this are refused (16 RGB 1024^2 images ~ 200 MB).
MAX_METADATA_BYTES = 4 << 20
MAX_UPLOAD_BYTES = 16 << 20      # An image to project (base64 in JSON).
MAX_PROJECT_STEPS = 2000
MAX_DIRECTIONS = 8               # Sliders on the page.


class RequestError(ValueError):
    """A bad request: answered with status 400 and ``{"error": message}``."""


def seed_latent(seed, dim):
    """z [1, dim] of a seed, as NVIDIA's tools draw it (``RandomState(seed).randn(1, dim)``)."""
    text = str(seed).strip()
    if not re.fullmatch(r'\d{1,10}', text) or int(text) > MAX_SEED:
        raise RequestError(f'seed must be an integer in [0, {MAX_SEED}], got {str(seed)[:40]!r}')
    if not re.fullmatch(r'\d{1,4}', str(dim)) or not 1 <= int(dim) <= 4096:
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


def _number_array(value, name, rank):
    """A nested list of numbers of ``rank`` (0 = a number) -> float32 array; RequestError for anything else
    (booleans, strings, objects, ragged lists, non-finite or overflowing values)."""
    def check(v, depth):
        if depth == rank:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RequestError(f'{name}: expected numbers, got {type(v).__name__}')
            return
        if not isinstance(v, list):
            raise RequestError(f'{name}: expected a {rank}-dimensional list of numbers')
        for item in v:
            check(item, depth + 1)
    check(value, 0)
    try:
        with np.errstate(over='raise', invalid='raise'):
            array = np.asarray(value, np.float64)
    except (ValueError, OverflowError, FloatingPointError):
        raise RequestError(f'{name}: expected a regular array of numbers') from None
    if not np.all(np.isfinite(array)) or np.any(np.abs(array) > np.finfo(np.float32).max):
        raise RequestError(f'{name} must be finite float32 numbers (no NaN, inf or overflow)')
    return array.astype(np.float32)


def check_request(body, signatures):
    """(signature name, {input: float32 array}) of a predict request, every input checked against
    ``signatures`` ({name: {input: shape, None for any size}}); RequestError says what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get('inputs'), dict):
        raise RequestError('expected a JSON object with "inputs" (columnar format)')
    name = body.get('signature_name') or 'serving_default'
    if not isinstance(name, str) or name not in signatures:
        raise RequestError(f'signature_name must be one of {sorted(signatures)}, got {str(name)[:60]!r}')
    specs, inputs = signatures[name], body['inputs']
    missing = [k for k in specs if k not in inputs]
    extra = sorted(str(k)[:40] for k in set(inputs) - set(specs))
    if missing or extra:
        raise RequestError(f'signature {name!r} takes inputs {list(specs)}; missing {missing}, unknown {extra}')
    out = {}
    for key, shape in specs.items():
        value = _number_array(inputs[key], key, len(shape))
        if len(value.shape) != len(shape) or any(e is not None and e != d for e, d in zip(shape, value.shape)):
            raise RequestError(f'{key}: expected shape {_shape_text(shape)}, got {list(value.shape)}')
        if value.ndim and value.shape[0] > MAX_BATCH:
            raise RequestError(f'{key}: at most {MAX_BATCH} samples per request, got {value.shape[0]}')
        if key == 'truncation_psi' and not PSI_RANGE[0] <= float(value) <= PSI_RANGE[1]:
            raise RequestError(f'truncation_psi must be in [{PSI_RANGE[0]}, {PSI_RANGE[1]}], got {float(value)}')
        out[key] = value
    return name, out


def max_body_bytes(signatures):
    """The largest body a valid request can need: MAX_BATCH samples of every input at 32 bytes a number."""
    def per_request(shape):
        n = MAX_BATCH if shape and shape[0] is None else 1
        for d in shape[1:] if shape and shape[0] is None else shape:
            n *= d if d is not None else 1
        return n
    largest = max((sum(per_request(shape) for shape in specs.values()) for specs in signatures.values()), default=0)
    return (64 << 10) + 32 * largest


class LocalBackend:
    """Answers TF Serving's REST requests with a generator in this process (the export's functions), and
    projects uploaded images (``project``: local only, TF Serving has no gradients)."""

    def __init__(self, G, distance=None, project_steps=100):
        import tensorflow as tf
        from afgan_tf.export.saved_model import _generator_endpoints
        self.G = G
        self._endpoints = {name: (tf.function(fn, input_signature=specs), specs)
                           for name, (fn, specs) in _generator_endpoints(G).items()}
        self._metadata = signature_metadata(self._endpoints)
        self.signatures = {name: {s.name: tuple(s.shape) for s in specs} for name, (_, specs) in self._endpoints.items()}
        self._lock = threading.Lock()       # One generator call at a time (the server is threaded).
        self._distance, self.project_steps = distance, int(project_steps)
        self._jobs, self._job_lock = {}, threading.Lock()

    # Projection of an uploaded image (W+), a job at a time, polled by the page.
    def start_projection(self, png_bytes, steps=None):
        """Starts projecting an uploaded image; returns the job id. RequestError for a bad image or a busy server."""
        import io
        from PIL import Image
        from afgan_tf import projector
        steps = self.project_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_PROJECT_STEPS:
            raise RequestError(f'steps must be an integer in [1, {MAX_PROJECT_STEPS}], got {str(steps)[:20]}')
        if self.G.c_dim:
            raise RequestError('projection of conditional networks is not supported')
        try:
            with Image.open(io.BytesIO(png_bytes)) as img:
                img.load()
                from afgan_tf import image_reading
                array = image_reading.to_array(img, 3 if img.mode not in image_reading.GREY_MODES else 1)
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
            raise RequestError(f'image: not a readable PNG or JPEG ({type(e).__name__})') from None
        target = projector.prepare_target(array, self.G.img_resolution, self.G.img_channels, log=lambda m: None)
        with self._job_lock:
            if any(not job['finished'] for job in self._jobs.values()):
                raise RequestError('a projection is running; wait for it to finish')
            job_id = str(len(self._jobs) + 1)
            job = self._jobs[job_id] = {'job': job_id, 'done': 0, 'total': steps, 'finished': False}

        def run():
            try:
                distance = self._distance_fn()
                with self._lock:
                    result = projector.project(self.G, target, distance, num_steps=steps, space='w+',
                                               progress=lambda done, total, _: job.update(done=done))
                job['ws'] = result['w'].tolist()
            except Exception as e:  # noqa: BLE001 - reported to the page.
                job['error'] = f'{type(e).__name__}: {str(e)[:300]}'
            job['finished'] = True
        threading.Thread(target=run, daemon=True).start()
        return job_id

    def _distance_fn(self):
        if self._distance is None:
            from afgan_tf import projector
            self._distance = projector.InceptionDistance(log=lambda m: None)
        return self._distance

    def projection(self, job_id):
        job = self._jobs.get(str(job_id)[:20])
        if job is None:
            raise RequestError(f'no projection job {str(job_id)[:20]!r}')
        return dict(job)

    def metadata(self):
        return self._metadata

    def predict(self, body):
        import tensorflow as tf
        name, inputs = check_request(body, self.signatures)
        fn, specs = self._endpoints[name]
        with self._lock:
            outputs = fn(*[tf.constant(inputs[s.name]) for s in specs])
        return {'outputs': {k: v.numpy().tolist() for k, v in outputs.items()}}


def _shape_text(shape):
    return '[' + ', '.join('N' if d is None else str(d) for d in shape) + ']'


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f'TF Serving redirected to {newurl[:200]} (not followed)',
                                     headers, fp)


def signatures_of_metadata(metadata):
    """{signature: {input: shape}} of TF Serving's metadata answer (sizes -1 -> None)."""
    try:
        defs = metadata['metadata']['signature_def']['signature_def']
        return {name: {key: tuple(None if int(d['size']) < 0 else int(d['size'])
                                  for d in info['tensor_shape'].get('dim', []))
                       for key, info in sig['inputs'].items()}
                for name, sig in defs.items() if sig.get('method_name', '').endswith('predict')}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConnectionError(f'TF Serving answered malformed metadata ({type(e).__name__}: {e})') from None


class ServingBackend:
    """Forwards metadata and predict requests to TF Serving at ``url`` (``http://host:8501/v1/models/NAME``):
    requests are checked against its signatures first, redirects are not followed, answers are capped."""

    def __init__(self, url, timeout=120):
        url = url.rstrip('/')
        if not re.fullmatch(r'https?://[^/]+/v1/models/[^/:]+(/versions/\d+|/labels/[^/:]+)?', url):
            raise ValueError(f'serving url must look like http://host:8501/v1/models/NAME, got {url!r}')
        self.url, self.timeout = url, timeout
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._signatures = None

    def _request(self, url, data=None, limit=None):
        limit = MAX_UPSTREAM_BYTES if limit is None else limit
        request = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = read_at_most(response, limit + 1)
        except urllib.error.HTTPError as e:
            text = e.read(64 << 10).decode(errors='replace') if e.fp is not None else str(e.reason)
            try:
                message = json.loads(text).get('error', text)
            except (ValueError, AttributeError):
                message = text
            if 300 <= e.code < 400:
                raise ConnectionError(str(e.reason)) from None
            raise RequestError(f'TF Serving: {str(message)[:1000]}') from None
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f'TF Serving at {self.url} is not reachable: {e}') from None
        if len(raw) > limit:
            raise ConnectionError(f'TF Serving answered more than {limit} bytes (refused)')
        return raw

    def metadata(self):
        try:
            meta = json.loads(self._request(f'{self.url}/metadata', limit=MAX_METADATA_BYTES))
        except (ValueError, RecursionError):
            raise ConnectionError('TF Serving answered metadata that is not JSON') from None
        self._signatures = signatures_of_metadata(meta)
        return meta

    @property
    def signatures(self):
        if self._signatures is None:
            self.metadata()
        return self._signatures

    def predict(self, body):
        """The checked request forwarded; TF Serving's answer relayed as bytes (not parsed here)."""
        name, inputs = check_request(body, self.signatures)
        request = {'signature_name': name, 'inputs': {k: v.tolist() for k, v in inputs.items()}}
        return self._request(f'{self.url}:predict', json.dumps(request).encode())


def _is_ip(host):
    try:
        ipaddress.ip_address(host.strip('[]'))
        return True
    except ValueError:
        return False


def make_server(backend, host='127.0.0.1', port=8080, model_name='generator', log=None, allowed_hosts=(),
                directions=None):
    """A threaded HTTP server for the page and the API; call ``serve_forever()`` (or use a thread).

    ``allowed_hosts``: names besides localhost and IP addresses that a request's Host header may carry
    (the names this server is reached by; DNS rebinding uses any other). ``directions``: latent
    directions (``afgan_tf.directions.load``) the page offers as sliders, applied in W by the page itself
    (mapping + synthesis signatures, so they also work through TF Serving). A back end with
    ``start_projection`` (the local one) also projects uploaded images."""
    page = PAGE.read_bytes()
    api = f'/v1/models/{model_name}'
    names = {'localhost', *(h.lower() for h in allowed_hosts)}
    projects = hasattr(backend, 'start_projection')
    edit = {'directions': [], 'layers': [], 'names': [], 'eigenvalues': []}
    if directions is not None:
        edit = {'directions': directions['directions'][:MAX_DIRECTIONS].tolist(),
                'layers': [int(i) for i in directions['layers']],
                'names': [str(n) for n in directions.get('layer_names', [])],
                'eigenvalues': [float(v) for v in directions.get('eigenvalues', [])][:MAX_DIRECTIONS]}
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    body_limit = [None]

    def limit():
        if body_limit[0] is None:
            body_limit[0] = max_body_bytes(backend.signatures)
        return body_limit[0]

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT

        def _send(self, status, body, content_type='application/json'):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(data)))
            self.send_header('Cache-Control', 'no-store')
            self.send_header('X-Content-Type-Options', 'nosniff')
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
                self._send(500, {'error': f'{type(e).__name__}: {str(e)[:500]}'})

        def _same_server(self, netloc):
            """Whether host[:port] names this server: localhost, an IP address or an allowed name."""
            parsed = urllib.parse.urlsplit(f'//{netloc}')
            try:
                port = parsed.port
            except ValueError:
                return False
            name = (parsed.hostname or '').lower()
            return bool(name) and (name in names or _is_ip(name)) and port in (None, self.server.server_port)

        def _allowed(self, post):
            host = self.headers.get('Host')
            if not host or not self._same_server(host):
                self._send(403, {'error': 'this server answers only requests for its own host name (Host header)'})
                return False
            origin = self.headers.get('Origin')
            if origin is not None:
                parsed = urllib.parse.urlsplit(origin)
                if parsed.scheme not in ('http', 'https') or not self._same_server(parsed.netloc):
                    self._send(403, {'error': 'cross-origin requests are not allowed'})
                    return False
            if post and (self.headers.get('Content-Type') or '').split(';')[0].strip().lower() != 'application/json':
                self._send(415, {'error': 'a POST needs Content-Type: application/json'})
                return False
            return True

        def do_GET(self):  # noqa: N802
            if not self._allowed(post=False):
                return
            url = urllib.parse.urlparse(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, max_num_fields=16))
            if url.path in ('/', '/index.html'):
                self._send(200, page, 'text/html; charset=utf-8')
            elif url.path == f'{api}/metadata':
                self._answer(backend.metadata)
            elif url.path == '/latent':
                self._answer(lambda: {'z': seed_latent(query.get('seed', ''), query.get('dim', '')).tolist()})
            elif url.path == '/config':
                self._answer(lambda: {'api': api, 'psi_range': PSI_RANGE, 'max_seed': MAX_SEED, 'projection': projects,
                                      'directions': len(edit['directions']),
                                      'project_steps': getattr(backend, 'project_steps', None)})
            elif url.path == '/directions':
                self._answer(lambda: edit)
            elif url.path == '/project' and projects:
                self._answer(lambda: backend.projection(query.get('job', '')))
            else:
                self._send(404, {'error': f'no such path {url.path[:200]}'})

        def do_POST(self):  # noqa: N802
            if not self._allowed(post=True):
                return
            upload = self.path == '/project' and projects
            if self.path != f'{api}:predict' and not upload:
                return self._send(404, {'error': f'no such path {self.path[:200]}'})
            most = MAX_UPLOAD_BYTES if upload else limit()
            try:
                length = int(self.headers.get('Content-Length', 0))
                if not 0 < length <= most:
                    return self._send(413, {'error': f'a JSON body of at most {most} bytes is required' +
                                            ('' if upload else f' (the largest valid request: {MAX_BATCH} samples)')})
                body = json.loads(self.rfile.read(length), parse_constant=_no_constant)
            except (ValueError, RecursionError, RequestError) as e:
                return self._send(400, {'error': f'bad request body: {type(e).__name__}: {str(e)[:300]}'})
            if upload:
                return self._answer(lambda: {'job': backend.start_projection(*_upload(body))})
            self._answer(lambda: backend.predict(body))

        def log_message(self, fmt, *args):
            if log:
                log(f'{self.address_string()} {fmt % args}')

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 16

        def process_request(self, request, client_address):
            if not slots.acquire(blocking=False):      # Busy: refuse now instead of holding a thread.
                try:
                    request.settimeout(2)
                    request.sendall(b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n'
                                    b'Connection: close\r\n\r\n')
                except OSError:
                    pass
                self.shutdown_request(request)
                return
            super().process_request(request, client_address)

        def process_request_thread(self, request, client_address):
            try:
                super().process_request_thread(request, client_address)
            finally:
                slots.release()

    return Server((host, port), Handler)


def _upload(body):
    """(image bytes, steps) of a /project body {"image": "data:image/png;base64,..." or base64, "steps": n}."""
    import base64
    import binascii
    if not isinstance(body, dict) or not isinstance(body.get('image'), str):
        raise RequestError('expected {"image": "<base64 PNG or JPEG>", "steps": n}')
    text = body['image'].split(',', 1)[1] if body['image'].startswith('data:') else body['image']
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError('image: not base64') from None
    return data, body.get('steps')


def _no_constant(name):
    raise RequestError(f'{name} is not a number this API accepts')
