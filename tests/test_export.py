"""SavedModel export for TF Serving: stock ops only, loadable without afgan_tf by both loaders."""

import http.server
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import images, nvidia
from afgan_tf.export import client, export_generator, graph_op_types
from afgan_tf.transforms import make_transform

# Runs in a fresh interpreter that never imports afgan_tf.
FRESH_PROCESS = r'''
import json, os, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
path, zfile = sys.argv[1], sys.argv[2]
z = np.load(zfile)
out = {}
proto = saved_model_pb2.SavedModel()
proto.ParseFromString(open(os.path.join(path, 'saved_model.pb'), 'rb').read())
ops = set()
for mg in proto.meta_graphs:
    ops.update(n.op for n in mg.graph_def.node)
    for f in mg.graph_def.library.function:
        ops.update(n.op for n in f.node_def)
out['unregistered_ops'] = sorted(op for op in ops if op_def_registry.get(op) is None)
m = tf.saved_model.load(path)
out['signatures'] = sorted(m.signatures)
psi = tf.constant(0.7)
out['default'] = m.signatures['serving_default'](z=tf.constant(z), truncation_psi=psi)['images'].numpy().tolist()
ws = m.signatures['mapping'](z=tf.constant(z), truncation_psi=psi)['ws']
out['ws'] = ws.numpy().tolist()
syn = m.signatures['synthesis'](ws=ws)
out['synthesis_float'] = syn['images_float'].numpy().tolist()
out['transformed'] = m.signatures['transformed'](z=tf.constant(z), truncation_psi=psi,
    translate=tf.constant([[0.1, -0.05]] * len(z), tf.float32), rotate=tf.constant([10.0] * len(z)))['images'].numpy().tolist()
# TF1 session loader (what TF Serving uses).
with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ['serve'], path)
    sig = meta.signature_def['serving_default']
    feed = {sig.inputs['z'].name: z, sig.inputs['truncation_psi'].name: np.float32(0.7)}
    out['session'] = sess.run(sig.outputs['images'].name, feed).tolist()
out['afgan_tf_imported'] = any(k.startswith('afgan_tf') for k in sys.modules)
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def exported(tmp_path_factory, reference_dir):
    net = nvidia.load_network_pkl(reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl')
    G = net['G_ema']
    base = tmp_path_factory.mktemp('serving') / 'sg3'
    path = export_generator(G, base, version=3)
    return G, base, path


def test_layout_and_stock_ops(exported):
    G, base, path = exported
    assert path == base / '3' and (path / 'saved_model.pb').is_file() and (path / 'variables').is_dir()
    ops = graph_op_types(path)
    assert 'AfganFilteredLrelu' not in ops and 'DepthwiseConv2dNative' in ops
    with pytest.raises(FileExistsError):
        export_generator(G, base, version=3)
    with pytest.raises(ValueError, match='version'):
        export_generator(G, base, version=0)


def test_fresh_process_both_loaders_match_keras(exported, tmp_path):
    G, _, path = exported
    z = np.random.default_rng(0).standard_normal([3, G.z_dim]).astype(np.float32)
    np.save(tmp_path / 'z.npy', z)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, '-c', FRESH_PROCESS, str(path), str(tmp_path / 'z.npy')],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['afgan_tf_imported'] is False
    assert out['unregistered_ops'] == []
    assert set(out['signatures']) == {'serving_default', 'transformed', 'mapping', 'synthesis'}
    ws = G.mapping(z, truncation_psi=0.7).numpy()
    img = G.synthesis(ws, impl='ref').numpy()
    assert np.max(np.abs(np.array(out['ws']) - ws)) < 1e-4
    assert np.max(np.abs(np.array(out['synthesis_float']) - img)) < 1e-4
    expected = images.to_uint8(img).astype(int)
    for key in ('default', 'session'):
        got = np.array(out[key])
        assert got.shape == (3, 32, 32, 3) and np.max(np.abs(got - expected)) <= 1, key
    moved = images.to_uint8(G.synthesis(ws, transform=make_transform((0.1, -0.05), 10)).numpy()).astype(int)
    assert np.max(np.abs(np.array(out['transformed']) - moved)) <= 1
    assert np.mean(np.abs(moved - expected)) > 1      # The transform did something.


def test_saved_model_cli(exported, tmp_path):
    _, _, path = exported
    np.save(tmp_path / 'z.npy', np.zeros([2, 128], np.float32))
    np.save(tmp_path / 'psi.npy', np.float32(1))
    cli = [sys.executable, '-m', 'tensorflow.python.tools.saved_model_cli']
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    show = subprocess.run(cli + ['show', '--all', '--dir', str(path)], capture_output=True, text=True, env=env)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "signature_def['serving_default']" in show.stdout and 'truncation_psi' in show.stdout
    run = subprocess.run(cli + ['run', '--dir', str(path), '--tag_set', 'serve', '--signature_def', 'serving_default',
                                '--inputs', f'z={tmp_path / "z.npy"};truncation_psi={tmp_path / "psi.npy"}'],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'images' in run.stdout


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


def test_rest_client_against_local_stand_in(exported):
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
        moved = rest.generate(z, translate=[[0.1, 0.0], [0.0, 0.1]], rotate=[5, 0])
        assert moved.shape == got.shape and np.mean(np.abs(moved.astype(int) - got)) > 0
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
