"""afgan-explore: the back ends, and the page in a real headless Chromium (through Playwright), local and
through the TF Serving stand-in. Set AFGAN_TF_EXPLORE_SCREENSHOT=path.png to keep a screenshot."""

import io
import json
import os
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from afgan_tf import image_writing
from afgan_tf.export import explore
from afgan_tf.transforms import make_transform
from conftest import ServingStandIn, tool

CHROMIUM = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
SETTLED = ("() => window.explorer && !window.explorer.busy && !window.explorer.again && "
           "['ready', 'error'].includes(document.body.dataset.state)")


def seed_z(seed, dim):
    return np.random.RandomState(seed).randn(1, dim).astype(np.float32)


def expected_image(G, seed, psi=1.0, translate=(0, 0), rotate=0):
    transform = make_transform(translate, rotate) if G.preset.accepts_transform else None
    img = G(seed_z(seed, G.z_dim), truncation_psi=psi, transform=transform, impl='ref').numpy()
    return image_writing.to_uint8(img)[0].astype(int)


class Server:
    """make_server(backend) on a free port, in a thread."""

    def __init__(self, backend, **kwargs):
        self.server = explore.make_server(backend, port=0, **kwargs)
        self.url = f'http://127.0.0.1:{self.server.server_port}/'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope='module')
def browser():
    if CHROMIUM is None:
        pytest.skip('no Chromium installed (apt-get install chromium): the explorer page is tested in a real browser')
    sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is not installed (pip install -e ".[dev]")')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--no-first-run', '--disable-quic'])
        yield browser
        browser.close()


def open_page(browser, url):
    page = browser.new_page(viewport={'width': 900, 'height': 760})
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => Number(document.body.dataset.renders) >= 1 || document.body.dataset.state === 'error'",
                           timeout=120000)
    page.wait_for_function(SETTLED, timeout=120000)
    assert page.evaluate('document.body.dataset.state') == 'ready', page.inner_text('#error')
    return page, errors


def shown(page):
    page.wait_for_function(SETTLED, timeout=120000)
    assert page.evaluate('document.body.dataset.state') == 'ready', page.inner_text('#error')
    return np.asarray(page.evaluate('window.explorer.lastImage'), int)


def canvas_png(page):
    return np.asarray(Image.open(io.BytesIO(page.locator('#image').screenshot())).convert('L'), int)


def test_page_with_local_network(browser, network, tmp_path):
    _, G = network
    server = Server(explore.LocalBackend(G))
    try:
        page, errors = open_page(browser, server.url)
        assert np.max(np.abs(shown(page) - expected_image(G, 0))) <= 1
        assert '32x32' in page.inner_text('#model') and 'transformed' in page.inner_text('#model')
        assert page.inner_text('#latency').endswith('ms')
        page.fill('#seed', '5')
        before, shot_before = shown(page), canvas_png(page)
        assert np.max(np.abs(before - expected_image(G, 5))) <= 1
        # Move the translate-x slider with the keyboard, as a user would: 25 steps of 0.01.
        page.focus('#tx')
        for _ in range(25):
            page.keyboard.press('ArrowRight')
        after, shot_after = shown(page), canvas_png(page)
        assert page.input_value('#tx') == '0.25' and page.inner_text('#tx-out') == '0.25'
        # The image changed (the reference network is untrained: low contrast) and is the network's output.
        assert np.mean(np.abs(after - before)) > 1.5 and np.mean(np.abs(shot_after - shot_before)) > 1
        assert np.max(np.abs(after - expected_image(G, 5, translate=(0.25, 0)))) <= 1
        page.fill('#psi-value', '0.5')
        assert np.max(np.abs(shown(page) - expected_image(G, 5, psi=0.5, translate=(0.25, 0)))) <= 1
        if os.environ.get('AFGAN_TF_EXPLORE_SCREENSHOT'):
            page.screenshot(path=os.environ['AFGAN_TF_EXPLORE_SCREENSHOT'])
        # Bad input: an error on the page, the last image kept.
        good = shown(page)
        for field, value, message in (('#psi-value', '3', 'truncation psi must be a number in [-1, 2]'),
                                      ('#seed', '12x', 'a seed is an integer in [0, 4294967295]'),
                                      ('#seed', '4294967296', 'a seed is an integer')):
            page.fill(field, value)
            page.wait_for_function(SETTLED)
            assert page.evaluate('document.body.dataset.state') == 'error'
            assert page.is_visible('#error') and message in page.inner_text('#error')
            assert np.array_equal(np.asarray(page.evaluate('window.explorer.lastImage'), int), good)
            page.fill(field, {'#psi-value': '0.5', '#seed': '5'}[field])
            shown(page)
        # Style mixing: seed 5's first layers, seed 7's from layer 6 on (mapping + synthesis signatures).
        page.fill('#seed-b', '7')
        page.evaluate("() => { const l = document.getElementById('layer'); l.value = 6; "
                      "l.dispatchEvent(new Event('input')); }")
        page.check('#mix')
        ws5 = G.mapping(seed_z(5, G.z_dim), None, truncation_psi=0.5).numpy()
        ws7 = G.mapping(seed_z(7, G.z_dim), None, truncation_psi=0.5).numpy()
        mixed = np.concatenate([ws5[:, :6], ws7[:, 6:]], 1)
        expected = image_writing.to_uint8(G.synthesis(mixed, impl='ref').numpy())[0].astype(int)
        assert np.max(np.abs(shown(page) - expected)) <= 1
        assert page.evaluate('window.explorer.lastRequest.signature_name') == 'synthesis'
        page.uncheck('#mix')
        shown(page)
        # Download: the PNG holds the shown image.
        with page.expect_download() as download:
            page.click('#download')
        path = tmp_path / 'download.png'
        download.value.save_as(path)
        assert np.array_equal(np.asarray(Image.open(path).convert('RGB'), int), shown(page))
        # The W interpolation loop: frames between seeds 1 and 2 (t = 0 is seed 1's image).
        page.fill('#loop-seeds', '1,2')
        page.click('#play')
        page.wait_for_function("() => document.getElementById('what').textContent.includes('t 0.50')", timeout=120000)
        page.click('#stop')
        assert np.max(np.abs(shown(page) - expected_image(G, 5, psi=0.5, translate=(0.25, 0)))) <= 1
        assert not errors, errors
    finally:
        server.close()


class PixelDistance:
    """A cheap projection distance for the tests (the explorer uses the FID Inception's or VGG16's)."""

    def features(self, images):
        return [images / 127.5 - 1]

    def distance(self, target, synth):
        import tensorflow as tf
        return tf.reduce_mean(tf.square(target[0] - synth[0]), axis=[1, 2, 3]) * 100


def edited_image(G, ws, dirs, strengths):
    from afgan_tf import directions
    for k, strength in enumerate(strengths):
        ws = directions.apply(ws, dirs['directions'][k], dirs['layers'], strength)
    return image_writing.to_uint8(G.synthesis(ws, impl='ref').numpy())[0].astype(int)


def move(page, selector, presses):
    page.focus(selector)
    for _ in range(presses):
        page.keyboard.press('ArrowRight')


def test_page_edits_with_directions_and_projects_an_upload(browser, network, tmp_path):
    from afgan_tf import directions
    _, G = network
    dirs = directions.sefa(G, layers=(1, 6), num=3)
    server = Server(explore.LocalBackend(G, distance=PixelDistance(), project_steps=40), directions=dirs)
    try:
        page, errors = open_page(browser, server.url)
        assert page.is_visible('#edit-set') and page.locator('#directions input[type=range]').count() == 3
        assert page.is_visible('#upload') and not page.is_visible('#upload-note')
        page.fill('#seed', '4')
        shown(page)
        move(page, '#dir-0', 6)                           # 6 steps of 0.5: strength 3 along the top direction.
        ws = G.mapping(seed_z(4, G.z_dim)).numpy()
        assert page.inner_text('#dir-0-out') == '3'
        assert np.max(np.abs(shown(page) - edited_image(G, ws, dirs, [3.0]))) <= 1
        assert page.evaluate('window.explorer.lastRequest.signature_name') == 'synthesis'
        target = tmp_path / 'target.png'
        Image.fromarray(expected_image(G, 9).astype(np.uint8).squeeze()).save(target)
        page.click('#edit-reset')
        shown(page)
        page.set_input_files('#upload', str(target))
        page.click('#project')
        page.wait_for_function("() => ['done', 'error'].includes(document.body.dataset.projection)", timeout=300000)
        assert page.evaluate('document.body.dataset.projection') == 'done', page.inner_text('#error')
        assert 'projected' in page.inner_text('#project-status')
        projected = np.asarray(page.evaluate('window.explorer.projected'), np.float32)[np.newaxis]
        assert projected.shape == (1, G.num_ws, G.w_dim)
        mine = shown(page)
        assert np.max(np.abs(mine - edited_image(G, projected, dirs, []))) <= 1
        assert np.mean(np.abs(mine - expected_image(G, 9))) < np.mean(np.abs(expected_image(G, 4) - expected_image(G, 9)))
        move(page, '#dir-1', 8)                           # Edit the projected image: strength 4 along direction 1.
        assert np.max(np.abs(shown(page) - edited_image(G, projected, dirs, [0.0, 4.0]))) <= 1
        if os.environ.get('AFGAN_TF_EXPLORE_EDIT_SCREENSHOT'):
            page.screenshot(path=os.environ['AFGAN_TF_EXPLORE_EDIT_SCREENSHOT'])
        page.click('#unproject')
        shown(page)
        assert page.evaluate('window.explorer.projected') is None
        assert not errors, errors
    finally:
        server.close()


def test_page_through_tf_serving_stand_in(browser, exported):
    G, _, path = exported
    with ServingStandIn(path, model='sg3') as serving:
        server = Server(explore.ServingBackend(serving.model_url))
        try:
            page, errors = open_page(browser, server.url)
            assert np.max(np.abs(shown(page) - expected_image(G, 0))) <= 1
            page.focus('#rot')
            for _ in range(15):
                page.keyboard.press('ArrowRight')
            assert np.max(np.abs(shown(page) - expected_image(G, 0, rotate=15))) <= 1
            # The page's requests reached TF Serving unchanged.
            sigs = [body['signature_name'] for _, body in serving.requests]
            assert set(sigs) == {'transformed'} and serving.requests[-1][1]['inputs']['rotate'] == [15]
            page.fill('#psi-value', '-2')
            page.wait_for_function(SETTLED)
            assert 'truncation psi must be' in page.inner_text('#error')
            assert not errors, errors
        finally:
            server.close()


def test_directions_work_through_tf_serving_and_projection_says_local_only(browser, exported):
    from afgan_tf import directions
    G, _, path = exported
    dirs = directions.sefa(G, num=2)
    with ServingStandIn(path, model='sg3') as serving:
        server = Server(explore.ServingBackend(serving.model_url), directions=dirs)
        try:
            page, errors = open_page(browser, server.url)
            assert page.is_visible('#upload-note') and not page.is_visible('#upload')
            assert 'local-only' in page.inner_text('#upload-note')
            move(page, '#dir-0', 4)
            ws = G.mapping(seed_z(0, G.z_dim)).numpy()
            assert np.max(np.abs(shown(page) - edited_image(G, ws, dirs, [2.0]))) <= 1
            assert {body['signature_name'] for _, body in serving.requests} >= {'mapping', 'synthesis'}
            assert not errors, errors
        finally:
            server.close()


def test_backends_and_server_errors(network):
    _, G = network
    backend = explore.LocalBackend(G)
    meta = backend.metadata()['metadata']['signature_def']['signature_def']
    assert set(meta) == {'serving_default', 'transformed', 'mapping', 'synthesis'}
    assert meta['mapping']['outputs']['ws']['tensor_shape']['dim'][1]['size'] == str(G.num_ws)
    z = seed_z(3, G.z_dim)
    out = backend.predict({'inputs': {'z': z.tolist(), 'truncation_psi': 1.0}})
    assert np.max(np.abs(np.asarray(out['outputs']['images'][0]) - expected_image(G, 3))) <= 1
    np.testing.assert_array_equal(explore.seed_latent('3', G.z_dim), z)
    for body, message in (({'inputs': {'z': z.tolist()}}, "missing \\['truncation_psi'\\]"),
                          ({'signature_name': 'nope', 'inputs': {}}, "signature_name must be one of .* got 'nope'"),
                          ({'inputs': {'z': [[1.0, 2.0]], 'truncation_psi': 1}}, r'z: expected shape \[N, 4\]'),
                          ({'inputs': {'z': [[float('nan')] * G.z_dim], 'truncation_psi': 1}}, 'z must be finite'),
                          ({'inputs': 'x'}, 'expected a JSON object')):
        with pytest.raises(explore.RequestError, match=message.replace('4', str(G.z_dim))):
            backend.predict(body)
    for seed in ('-1', '1.5', 'abc', str(2 ** 32)):
        with pytest.raises(explore.RequestError, match='seed must be an integer'):
            explore.seed_latent(seed, 4)
    with pytest.raises(ValueError, match='serving url must look like'):
        explore.ServingBackend('http://host:8501/v1/models')
    server = Server(backend)
    try:
        request = urllib.request.Request(server.url + 'v1/models/generator:predict', data=b'{"inputs": 1}',
                                         headers={'Content-Type': 'application/json'})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=60)
        assert err.value.code == 400 and 'expected a JSON object' in json.loads(err.value.read())['error']
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + 'latent?seed=x&dim=4', timeout=60)
        assert err.value.code == 400
    finally:
        server.close()
    # TF Serving unreachable: 502 with a message.
    dead = Server(explore.ServingBackend('http://127.0.0.1:9/v1/models/m'))
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(dead.url + 'v1/models/generator/metadata', timeout=60)
        assert err.value.code == 502 and 'not reachable' in json.loads(err.value.read())['error']
    finally:
        dead.close()


def test_cli_usage_errors(network):
    path, _ = network
    both = tool('explore', f'--network={path}', '--serving-url=http://127.0.0.1:9/v1/models/m')
    assert both.returncode == 2 and 'exactly one of --network and --serving-url' in both.stderr
    dead = tool('explore', '--serving-url=http://127.0.0.1:9/v1/models/m')
    assert dead.returncode == 2 and 'not reachable' in dead.stderr


# ------------------------------------------------------------------------------------------------
# Safe to leave running: limits, timeouts, Host / Origin / Content-Type, upstream answers, a request fuzz.

def raw_request(url, method='POST', path='v1/models/generator:predict', body=b'', headers=None, timeout=30,
                content_length=None):
    """(status, parsed JSON or None) of one request with exactly these headers (http.client, no defaults).
    ``content_length`` declares a length other than the body's (the headers alone with an empty body)."""
    import http.client
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.putrequest(method, '/' + path, skip_host=True, skip_accept_encoding=True)
        for key, value in {'Host': parsed.netloc, 'Content-Type': 'application/json', **(headers or {})}.items():
            if value is not None:
                conn.putheader(key, value)
        if method == 'POST':
            conn.putheader('Content-Length', str(len(body) if content_length is None else content_length))
        conn.endheaders(body if method == 'POST' else None)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, None
    finally:
        conn.close()



def test_requests_are_checked_before_the_generator(network):
    _, G = network
    server = Server(explore.LocalBackend(G))
    z = seed_z(1, G.z_dim).tolist()
    good = {'inputs': {'z': z, 'truncation_psi': 0.7}}
    try:
        assert raw_request(server.url, body=json.dumps(good).encode())[0] == 200
        bad_bodies = {
            'deep JSON': b'[' * 100000 + b']' * 100000,
            'unhashable signature_name': json.dumps({'signature_name': ['x'], 'inputs': {}}).encode(),
            'huge integer': b'{"inputs": {"z": [[' + b'1' + b'0' * 400 + b']], "truncation_psi": 1}}',
            'overflowing float': json.dumps(good).encode().replace(b'0.7', b'1e400'),
            'NaN constant': json.dumps(good).encode().replace(b'0.7', b'NaN'),
            'psi 1e30': json.dumps({'inputs': {'z': z, 'truncation_psi': 1e30}}).encode(),
            'psi true': json.dumps({'inputs': {'z': z, 'truncation_psi': True}}).encode(),
            'psi string': json.dumps({'inputs': {'z': z, 'truncation_psi': '0.7'}}).encode(),
            'ragged z': json.dumps({'inputs': {'z': [z[0], z[0][:2]], 'truncation_psi': 1}}).encode(),
            'too many samples': json.dumps({'inputs': {'z': z * 17, 'truncation_psi': 1}}).encode(),
        }
        for what, body in bad_bodies.items():
            status, answer = raw_request(server.url, body=body)
            assert status == 400 and answer and answer.get('error'), (what, status, answer)
        status, answer = raw_request(server.url, method='GET', path='latent?seed=' + '9' * 5000 + '&dim=4')
        assert status == 400 and 'seed must be an integer' in answer['error']
    finally:
        server.close()


def test_host_origin_content_type_body_limit(network):
    _, G = network
    server = Server(explore.LocalBackend(G))
    body = json.dumps({'inputs': {'z': seed_z(1, G.z_dim).tolist(), 'truncation_psi': 1.0}}).encode()
    port = server.server.server_port
    try:
        assert raw_request(server.url, body=body, headers={'Host': f'localhost:{port}'})[0] == 200
        assert raw_request(server.url, body=body, headers={'Origin': f'http://127.0.0.1:{port}'})[0] == 200
        for headers, status in (({'Host': f'evil.example:{port}'}, 403),            # DNS rebinding.
                                ({'Host': None}, 403),
                                ({'Host': f'127.0.0.1:{port + 1}'}, 403),
                                ({'Origin': 'http://evil.example'}, 403),            # A cross-site POST.
                                ({'Origin': 'null'}, 403),
                                ({'Content-Type': 'text/plain'}, 415)):              # No CORS preflight: refused.
            assert raw_request(server.url, body=body, headers=headers)[0] == status, headers
        assert raw_request(server.url, method='GET', path='', headers={'Host': 'evil.example'})[0] == 403
        limit = explore.max_body_bytes(explore.LocalBackend(G).signatures)
        assert limit < 8 << 20                  # Far below the old 64 MiB, from the largest valid request.
        # The server answers from Content-Length alone and closes: the headers only, so that no send of the
        # body can hit a closed pipe under load.
        status, answer = raw_request(server.url, content_length=limit + 1)
        assert status == 413 and 'at most' in answer['error']
    finally:
        server.close()
    named = explore.make_server(explore.LocalBackend(G), port=0, allowed_hosts=['gen.example'])
    threading.Thread(target=named.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{named.server_port}/'
        assert raw_request(url, body=body, headers={'Host': f'gen.example:{named.server_port}'})[0] == 200
    finally:
        named.shutdown()
        named.server_close()


def test_idle_connections_time_out_and_are_capped(network, monkeypatch):
    import socket
    import time
    _, G = network
    monkeypatch.setattr(explore, 'SOCKET_TIMEOUT', 1)
    server = Server(explore.LocalBackend(G))
    port = server.server.server_port
    try:
        sockets = []
        for _ in range(explore.MAX_CONNECTIONS):        # Half-sent requests hold every slot ...
            s = socket.create_connection(('127.0.0.1', port))
            s.sendall(b'POST /v1/models/generator:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n')
            sockets.append(s)
        time.sleep(0.3)
        extra = socket.create_connection(('127.0.0.1', port), timeout=10)   # ... so one more is refused at once,
        extra.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        assert extra.recv(100).startswith(b'HTTP/1.1 503')
        extra.close()
        start = time.time()
        for s in sockets:                                # ... and the server drops them after SOCKET_TIMEOUT.
            s.settimeout(10)
            assert s.recv(100) == b''                    # Closed by the server (no answer to half a request).
            s.close()
        assert time.time() - start < 8
        time.sleep(0.5)
        assert raw_request(server.url, method='GET', path='config')[0] == 200      # Slots free again.
    finally:
        server.close()


class FakeUpstream:
    """A TF Serving stand-in that redirects, or answers too much, for the forwarding back end."""

    def __init__(self, mode, metadata):
        import http.server
        fake = self
        self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                fake.hits.append(self.path)
                self._reply(json.dumps(metadata).encode())

            def do_POST(self):  # noqa: N802
                fake.hits.append(self.path)
                self.rfile.read(int(self.headers['Content-Length']))
                if mode == 'redirect':
                    self.send_response(302)
                    self.send_header('Location', f'http://127.0.0.1:{fake.other}/secret')
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                else:
                    self._reply(b'{"outputs": [' + b'0,' * (1 << 20) + b'0]}')

            def _reply(self, data):
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass
        self.server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.other = 9
        self.url = f'http://127.0.0.1:{self.server.server_port}/v1/models/m'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_forwarding_checks_requests_refuses_redirects_and_caps_answers(network, monkeypatch):
    _, G = network
    metadata = explore.LocalBackend(G).metadata()
    body = {'inputs': {'z': seed_z(1, G.z_dim).tolist(), 'truncation_psi': 1.0}}
    other = FakeUpstream('big', metadata)            # The local service a redirect would reach.
    redirecting = FakeUpstream('redirect', metadata)
    redirecting.other = other.server.server_port
    try:
        backend = explore.ServingBackend(redirecting.url)
        with pytest.raises(explore.RequestError, match='truncation_psi must be in'):
            backend.predict({'inputs': {'z': body['inputs']['z'], 'truncation_psi': 1e30}})
        assert redirecting.hits == ['/v1/models/m/metadata']            # Checked here, never forwarded.
        with pytest.raises(ConnectionError, match='redirected'):
            backend.predict(body)
        assert other.hits == []                                          # The redirect was not followed.
        monkeypatch.setattr(explore, 'MAX_UPSTREAM_BYTES', 1 << 20)
        with pytest.raises(ConnectionError, match='more than'):
            explore.ServingBackend(other.url).predict(body)
    finally:
        other.close()
        redirecting.close()


def test_http_api_fuzz(network):
    """A bounded loop of mutated requests on 127.0.0.1: every answer is 200 or a 4xx with a JSON error, never a
    500 or a dropped connection, and the server still answers afterwards."""
    _, G = network
    rng = np.random.default_rng(0)
    server = Server(explore.LocalBackend(G))
    good = json.dumps({'signature_name': 'mapping', 'inputs': {'z': seed_z(2, G.z_dim).tolist(),
                                                               'truncation_psi': 0.5}}).encode()
    tokens = [b'[', b']', b'{', b'}', b'"', b',', b':', b'1e999', b'-0', b'true', b'null', b'NaN', b'"z"',
              b'"inputs"', b'9' * 400, b'\x00', b'\xff', b'[' * 5000]
    statuses = {}
    try:
        for i in range(300):
            body = bytearray(good)
            for _ in range(int(rng.integers(1, 6))):
                kind, pos = int(rng.integers(4)), int(rng.integers(len(body) + 1))
                if kind == 0:
                    body[pos:pos] = tokens[int(rng.integers(len(tokens)))]
                elif kind == 1:
                    del body[pos:pos + int(rng.integers(1, 40))]
                elif kind == 2 and body:
                    body[min(pos, len(body) - 1)] = int(rng.integers(256))
                else:
                    body = body[:pos]
            path = ['v1/models/generator:predict', 'v1/models/generator/metadata', 'latent?seed=1&dim=4',
                    'latent?seed=' + '%ff' * 3, 'v1/models/x:predict'][i % 5]
            status, answer = raw_request(server.url, method='GET' if 'latent' in path or 'metadata' in path else 'POST',
                                         path=path, body=bytes(body))
            statuses[status] = statuses.get(status, 0) + 1
            assert status in (200, 400, 404, 413), (status, bytes(body)[:200])
            assert status == 200 or (answer and answer.get('error')), (status, answer)
        assert raw_request(server.url, body=good)[0] == 200
        assert statuses.get(400, 0) > 50 and statuses.get(200, 0) > 50, statuses
    finally:
        server.close()
