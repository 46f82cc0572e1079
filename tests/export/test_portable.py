"""TFLite and ONNX export, each run by its own interpreter against the SavedModel's output."""

import numpy as np
import pytest
import tensorflow as tf

from afgan_tf.export import portable
from conftest import tool


@pytest.fixture(scope='module')
def saved_model_images(exported):
    """z, and the SavedModel's serving_default images for z at psi 0.7 (what every format must match)."""
    G, _, path = exported
    z = np.random.default_rng(5).standard_normal([3, G.z_dim]).astype(np.float32)
    model = tf.saved_model.load(str(path))
    images = model.signatures['serving_default'](z=tf.constant(z), truncation_psi=tf.constant(0.7))['images']
    return z, images.numpy().astype(int)


@pytest.mark.parametrize('float16', [False, True])
def test_tflite_matches_saved_model(exported, saved_model_images, tmp_path, float16):
    G = exported[0]
    z, expected = saved_model_images
    path = portable.export_tflite(G, tmp_path / 'g.tflite', float16=float16)
    gen = portable.TFLiteGenerator(path)
    got = gen(z, 0.7)
    assert got.dtype == np.uint8 and got.shape == expected.shape
    assert np.max(np.abs(got.astype(int) - expected)) <= 1
    # Dynamic batch: another batch size, each image as in the batch of 3.
    single = gen(z[1:2], 0.7)
    assert single.shape[0] == 1 and np.max(np.abs(single[0].astype(int) - expected[1])) <= 1
    # The interpreter needs no TensorFlow ops (built-ins only) and float16 halves the weights.
    if float16:
        full = portable.export_tflite(G, tmp_path / 'full.tflite')
        assert path.stat().st_size < 0.6 * full.stat().st_size


def test_tflite_fixed_batch_and_bad_input(exported, saved_model_images, tmp_path):
    G = exported[0]
    z, expected = saved_model_images
    gen = portable.TFLiteGenerator(portable.export_tflite(G, tmp_path / 'g3.tflite', batch=3))
    assert list(gen.inputs['z']['shape_signature']) == [3, G.z_dim]
    assert np.max(np.abs(gen(z, 0.7).astype(int) - expected)) <= 1
    with pytest.raises(ValueError, match='fixed batch of 3'):
        gen(z[:2], 0.7)
    with pytest.raises(ValueError, match=rf'z must be \[N, {G.z_dim}\]'):
        gen(np.zeros([3, 5]), 0.7)
    with pytest.raises(ValueError, match='batch must be a positive integer'):
        portable.export_tflite(G, tmp_path / 'bad.tflite', batch=0)


def test_onnx_matches_saved_model(exported, saved_model_images, tmp_path):
    pytest.importorskip('tf2onnx', reason='tf2onnx is not installed (pip install -e ".[onnx]")')
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (pip install -e ".[onnx]")')
    G = exported[0]
    z, expected = saved_model_images
    gen = portable.OnnxGenerator(portable.export_onnx(G, tmp_path / 'g.onnx'))
    got = gen(z, 0.7)
    assert got.dtype == np.uint8 and np.max(np.abs(got.astype(int) - expected)) <= 1
    assert gen(z[:1], 0.7).shape[0] == 1            # Dynamic batch.


def test_cli_formats(network, tmp_path):
    path, _ = network
    result = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--format=tflite', '--batch=2',
                  '--float16')
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'm' / 'generator-fp16.tflite').is_file() and 'batch 2' in result.stdout
    gen = portable.TFLiteGenerator(tmp_path / 'm' / 'generator-fp16.tflite')
    assert gen(np.zeros([2, gen.z_dim]), 1.0).shape[0] == 2
    again = tool('export', f'--network={path}', f'--outdir={tmp_path / "m"}', '--format=tflite', '--batch=2',
                 '--float16')
    assert again.returncode == 2 and 'exists' in again.stderr
    bad = tool('export', f'--network={path}', f'--outdir={tmp_path / "o"}', '--format=onnx', '--float16')
    assert bad.returncode == 2 and '--float16 applies to --format tflite only' in bad.stderr
    bad = tool('export', f'--network={path}', f'--outdir={tmp_path / "s"}', '--batch=2')
    assert bad.returncode == 2 and 'tflite/onnx only' in bad.stderr
