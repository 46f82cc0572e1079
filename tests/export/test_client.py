"""afgan_tf.export.client against a local TF Serving stand-in."""

import http.server
import json
import threading

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import image_writing as images
from afgan_tf.export import client


class _StandIn(http.server.BaseHTTPRequestHandler):
    """A TF Serving REST stand-in: :predict runs the SavedModel's signatures."""
    model = None
    requests_seen = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
        self.requests_seen.append((self.path, body))
        signature = self.model.signatures[body.get('signature_name', 'serving_default')]
        inputs = {k: tf.constant(np.asarray(v, np.float32)) for k, v in body['inputs'].items()}
        outputs = signature(**inputs)
        data = json.dumps({'outputs': {k: v.numpy().tolist() for k, v in outputs.items()}}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_rest_client_against_local_stand_in(exported, reference_dir):
    G, _, path = exported
    _StandIn.model = tf.saved_model.load(str(path))
    server = http.server.HTTPServer(('127.0.0.1', 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rest = client.RestClient(f'http://127.0.0.1:{server.server_port}', model='sg3', timeout=120)
        z = np.random.default_rng(1).standard_normal([2, G.z_dim]).astype(np.float32)
        got = rest.generate(z, truncation_psi=0.5)
        expected = images.to_uint8(G(z, truncation_psi=0.5, impl='ref').numpy()).astype(int)
        assert got.dtype == np.uint8 and np.max(np.abs(got.astype(int) - expected)) <= 1
        # The same truncation with and without the transform: only the transform differs.
        moved = rest.generate(z, truncation_psi=0.5, translate=[[0.1, 0.0], [0.0, 0.1]], rotate=[5, 0])
        assert moved.shape == got.shape and np.mean(np.abs(moved.astype(int) - got)) > 1
        # NVIDIA's transformed images (translate (0.1, -0.05), rotate 10) of the reference's z.
        io = np.load(reference_dir / 'stylegan3-t_32' / 'io.npz')
        ref = rest.generate(io['z'], truncation_psi=1.0, translate=[[0.1, -0.05]] * 3, rotate=[10.0] * 3)
        expected = images.to_uint8(np.transpose(io['img_xform'], (0, 2, 3, 1))).astype(int)
        assert np.max(np.abs(ref.astype(int) - expected)) <= 1
        paths = [p for p, _ in _StandIn.requests_seen]
        assert paths[0] == '/v1/models/sg3:predict' and _StandIn.requests_seen[1][1]['signature_name'] == 'transformed'
    finally:
        server.shutdown()


def test_predict_body_validation():
    body = client.predict_body(np.zeros([2, 4]), truncation_psi=0.7)
    assert body['signature_name'] == 'serving_default' and body['inputs']['truncation_psi'] == 0.7
    with pytest.raises(ValueError, match='z must be'):
        client.predict_body(np.zeros([4]))
    with pytest.raises(ValueError, match='translate must be'):
        client.predict_body(np.zeros([2, 4]), translate=[[0, 0]])
