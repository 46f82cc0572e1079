"""metrics/lpips.py against an independent numpy LPIPS, for each weight format."""

import numpy as np
import pytest

from afgan_tf.metrics import lpips
from conftest import ScriptModuleStandIn, numpy_lpips, random_vgg16_state_dict, write_torch_state_dict


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """(vgg path, lin path, convs [(OIHW, bias)], lin arrays) with random weights."""
    root = tmp_path_factory.mktemp('lpips')
    state, lin = random_vgg16_state_dict()
    write_torch_state_dict(root / 'vgg16.pth', state)
    write_torch_state_dict(root / 'vgg.pth', lin, legacy=True)      # lpips ships legacy torch.save files.
    convs = [(state[k], state[k.replace('weight', 'bias')]) for k in state if k.endswith('weight')]
    return root / 'vgg16.pth', root / 'vgg.pth', convs, [v.reshape(-1) for v in lin.values()]


def images(n, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, [n, size, size, channels]).astype(np.float32)


@pytest.mark.parametrize('channels', [3, 1])
def test_torchvision_weights_match_numpy(weights, channels):
    vgg, lin_path, convs, lin = weights
    net = lpips.Lpips(str(vgg), str(lin_path), log=lambda m: None)
    x0, x1 = images(3, channels=channels), images(3, channels=channels, seed=1)
    x1[0] = x0[0]                                  # Identical images: distance 0.
    expected = numpy_lpips(x0, x1, convs, lin)
    got = net.distance(x0, x1).numpy()
    assert expected[0] == 0 and abs(got[0]) < 1e-6
    np.testing.assert_allclose(got[1:], expected[1:], rtol=2e-4)
    # The embedding's squared distances are the LPIPS distances.
    e0, e1 = net.embed(x0).numpy(), net.embed(x1).numpy()
    np.testing.assert_allclose(np.sum((e0 - e1) ** 2, 1)[1:], expected[1:], rtol=2e-4)


def test_torchscript_archive_with_calibration(weights, tmp_path):
    """A TorchScript LPIPS archive (module tree, code/): convolutions and lin weights found by shape."""
    vgg, lin_path, convs, lin = weights
    slices = {f'slice{i}': ScriptModuleStandIn('torch.nn.modules.conv.Conv2d', weight=w, bias=b, stride=[1, 1])
              for i, (w, b) in enumerate(convs)}
    lins = {f'lin{i}': ScriptModuleStandIn('lpips.NetLinLayer', model=ScriptModuleStandIn(
        'torch.nn.Sequential', **{'1': ScriptModuleStandIn('torch.nn.Conv2d', weight=w.reshape(1, -1, 1, 1) * 2)}))
        for i, w in enumerate(lin)}
    root = ScriptModuleStandIn('lpips.LPIPS', net=ScriptModuleStandIn('lpips.vgg16', **slices), **lins)
    script = write_torch_state_dict(tmp_path / 'lpips_script.pt', root, code={'__torch__/lpips.py': '# not read\n'})
    convs_read, lin_read, prep = lpips.load_vgg16(str(script))
    assert prep == 'lpips' and len(convs_read) == 13 and lin_read is not None
    np.testing.assert_array_equal(lin_read[3], lin[3] * 2)
    np.testing.assert_array_equal(convs_read[5][0], convs[5][0].transpose(2, 3, 1, 0))
    # Its calibration weights are used unless others are given.
    net = lpips.Lpips(str(script), log=lambda m: None)
    x0, x1 = images(2), images(2, seed=4)
    np.testing.assert_allclose(net.distance(x0, x1).numpy(), numpy_lpips(x0, x1, convs, [w * 2 for w in lin]),
                               rtol=2e-4)


def test_keras_weights_match_numpy(random_vgg16_file):
    vgg = lpips.load_vgg16(str(random_vgg16_file))
    convs_hwio, lin, prep = vgg
    assert prep == 'caffe' and lin is None and len(convs_hwio) == 13
    rng = np.random.default_rng(3)
    lin = [rng.random(c).astype(np.float32) for c in lpips.TAP_CHANNELS]
    net = lpips.Lpips.__new__(lpips.Lpips)          # Keras weights with given calibration weights.
    import tensorflow as tf
    net.preprocessing = 'caffe'
    net.kernels = [(tf.constant(k), tf.constant(b)) for k, b in convs_hwio]
    net.lin = [tf.constant(w) for w in lin]
    net._embed = tf.function(net._embed_graph)
    x0, x1 = images(2, channels=1), images(2, channels=1, seed=2)
    expected = numpy_lpips(x0, x1, [(k.transpose(3, 2, 0, 1), b) for k, b in convs_hwio], lin, caffe=True)
    np.testing.assert_allclose(net.distance(x0, x1).numpy(), expected, rtol=2e-4)


def test_bad_files(weights, tmp_path):
    vgg, lin_path, _, _ = weights
    with pytest.raises(FileNotFoundError, match='VGG16 weights file not found'):
        lpips.Lpips(str(tmp_path / 'nope.pth'), str(lin_path))
    wrong = write_torch_state_dict(tmp_path / 'wrong.pth', {'features.0.weight': np.zeros([8, 3, 3, 3], np.float32)})
    with pytest.raises(ValueError, match='found 0 of the 13 VGG16 convolutions'):
        lpips.Lpips(str(wrong), str(lin_path))
    with pytest.raises(ValueError, match='lacks lin0.model.1.weight'):
        lpips.Lpips(str(vgg), str(wrong))
    (tmp_path / 'junk.pth').write_bytes(b'not a torch file')
    with pytest.raises(ValueError, match='not a VGG16 weights file'):
        lpips.Lpips(str(tmp_path / 'junk.pth'), str(lin_path))
    net = lpips.Lpips(str(vgg), str(lin_path))
    with pytest.raises(ValueError, match='at least 16x16'):
        net.embed(images(1, size=8))


def test_calibration_from_a_wheel_into_the_cache(weights, tmp_path, monkeypatch):
    """--lpips WHEEL: vgg.pth is taken out of the lpips wheel into the cache once (as a PyPI download is)."""
    import zipfile
    _, lin_path, _, lin = weights
    wheel = tmp_path / 'lpips-0.1.4-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w') as z:
        z.writestr(lpips.LPIPS_MEMBER, lin_path.read_bytes())
    monkeypatch.setenv('AFGAN_TF_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('AFGAN_TF_LPIPS', raising=False)
    path = lpips.lpips_weights_path(str(wheel))
    assert path == str(tmp_path / 'cache' / lpips.LPIPS_CACHE_NAME)
    read = lpips.load_lpips_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(read, lin))
    # Later calls without a path read the cache (no download).
    monkeypatch.setattr(lpips, 'pypi_member', lambda *a, **k: pytest.fail('downloaded although cached'))
    assert lpips.lpips_weights_path() == path
    empty = tmp_path / 'empty.whl'
    with zipfile.ZipFile(empty, 'w') as z:
        z.writestr('other.txt', 'x')
    with pytest.raises(ValueError, match='has no lpips/weights/v0.1/vgg.pth'):
        lpips.lpips_weights_path(str(empty))
