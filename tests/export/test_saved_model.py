"""SavedModel export for TF Serving: stock ops only, loadable without afgan_tf by both loaders."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf import image_writing as images
from afgan_tf.export import export_generator, graph_op_types
from afgan_tf.transforms import make_transform

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
    translate=tf.constant([[0.1, -0.05]] * len(z), tf.float32),
    rotate=tf.constant([10.0] * len(z)))['images'].numpy().tolist()
# TF1 session loader (what TF Serving uses).
with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ['serve'], path)
    sig = meta.signature_def['serving_default']
    feed = {sig.inputs['z'].name: z, sig.inputs['truncation_psi'].name: np.float32(0.7)}
    out['session'] = sess.run(sig.outputs['images'].name, feed).tolist()
out['afgan_tf_imported'] = any(k.startswith('afgan_tf') for k in sys.modules)
print(json.dumps(out))
'''


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


def test_saved_model_refuses_non_finite_inputs_and_serves_empty_batches(exported):
    G, _, path = exported
    m = tf.saved_model.load(str(path))
    z = tf.constant(np.random.default_rng(0).standard_normal([2, G.z_dim]).astype(np.float32))
    nan_z = tf.tensor_scatter_nd_update(z, [[0, 3]], [np.nan])
    cases = [('serving_default', dict(z=z, truncation_psi=tf.constant(np.nan)), 'truncation_psi'),
             ('serving_default', dict(z=nan_z, truncation_psi=tf.constant(1.0)), 'z must be finite'),
             ('transformed', dict(z=z, truncation_psi=tf.constant(1.0), translate=tf.constant([[0.1, np.inf]] * 2),
                                  rotate=tf.zeros([2])), 'translate'),
             ('transformed', dict(z=z, truncation_psi=tf.constant(1.0), translate=tf.zeros([2, 2]),
                                  rotate=tf.constant([np.nan, 0.0])), 'rotate'),
             ('synthesis', dict(ws=tf.fill([1, G.num_ws, G.w_dim], np.inf)), 'ws must be finite')]
    for name, inputs, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            m.signatures[name](**inputs)
    empty = m.signatures['serving_default'](z=tf.zeros([0, G.z_dim]), truncation_psi=tf.constant(0.7))['images']
    assert empty.shape == (0, 32, 32, 3) and empty.dtype == tf.uint8
    out = m.signatures['synthesis'](ws=tf.zeros([0, G.num_ws, G.w_dim]))
    assert out['images'].shape == (0, 32, 32, 3) and out['images_float'].shape == (0, 32, 32, 3)
    assert m.signatures['mapping'](z=tf.zeros([0, G.z_dim]), truncation_psi=tf.constant(1.0))['ws'].shape[0] == 0


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
