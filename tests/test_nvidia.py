"""afgan_tf.nvidia: NVIDIA network pickles become our models (parity with the reference outputs)."""

import io
import pickle

import numpy as np
import pytest

from afgan_tf import nvidia, torch_pickle

from conftest import TOL, max_abs, nhwc, rewrite_strings


def test_g_ema_and_d_reproduce_reference(snapshot):
    _, net, io_ = snapshot
    G = net['G_ema']
    assert net['architecture'] == 'stylegan3-t'
    assert max_abs(G.synthesis(io_['ws']), nhwc(io_['img'])) < TOL
    assert max_abs(G(io_['z'], truncation_psi=0.7), nhwc(io_['img_trunc07'])) < TOL
    assert max_abs(G.synthesis(io_['ws'], transform=io_['xform_matrix']), nhwc(io_['img_xform'])) < TOL
    assert max_abs(net['D'](nhwc(io_['img'])), io_['d_logits']) < TOL
    assert max_abs(net['D'](nhwc(io_['d_input_real'])), io_['d_logits_real']) < TOL


def test_g_differs_from_g_ema_as_stored(snapshot):
    path, net, io_ = snapshot
    raw = torch_pickle.load(open(path, 'rb'))
    stored_G = torch_pickle.module_state_dict(raw['G'])
    ours_G = nvidia.state_dict(net['G'])
    for key, value in stored_G.items():
        assert np.allclose(ours_G[key], value), key
    assert max_abs(net['G'].synthesis(io_['ws']), net['G_ema'].synthesis(io_['ws'])) > 1e-3


def test_extras(snapshot):
    _, net, _ = snapshot
    assert 0 <= net['augment_p'] <= 1
    assert net['augment_kwargs']['xflip'] == 1
    assert net['training_set_kwargs']['resolution'] == 32


def test_truncated_file_gives_clear_error(tmp_path, snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    for size in (10, len(data) // 2, len(data) - 5):
        with pytest.raises(pickle.UnpicklingError, match='truncated or corrupt'):
            nvidia.load_network_pkl(io.BytesIO(data[:size]))


def test_numpy_1x_names_load(snapshot):
    path, net, io_ = snapshot
    data = path.read_bytes()
    assert b'numpy._core.multiarray' in data
    old = rewrite_strings(data, {'numpy._core.multiarray': 'numpy.core.multiarray'})
    assert b'numpy._core.multiarray' not in old and b'numpy.core.multiarray' in old
    net_old = nvidia.load_network_pkl(io.BytesIO(old))
    assert max_abs(net_old['G_ema'].synthesis(io_['ws']), nhwc(io_['img'])) < TOL


def test_unknown_classes_are_named(snapshot):
    path, _, _ = snapshot
    data = path.read_bytes()
    with pytest.raises(ValueError, match="unknown class 'Gen3rator'"):
        nvidia.load_network_pkl(io.BytesIO(rewrite_strings(data, {'Generator': 'Gen3rator'})))
    with pytest.raises(ValueError, match=r"unknown classes \['WeirdLayer'\]"):
        nvidia.load_network_pkl(io.BytesIO(rewrite_strings(data, {'FullyConnectedLayer': 'WeirdLayer'})))


def _with_kwarg(data, key, value_op):
    """The pickle ``data`` with the int value after every string ``key`` replaced by the bytes ``value_op``."""
    import pickletools
    ops = list(pickletools.genops(data))
    out = bytearray()
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        if op.name == 'FRAME':
            continue
        j = i - 1
        while j >= 0 and ops[j][0].name in ('MEMOIZE', 'BINPUT', 'LONG_BINPUT'):
            j -= 1
        previous = ops[j] if j >= 0 else None
        if previous and previous[0].name in ('SHORT_BINUNICODE', 'BINUNICODE') and previous[1] == key and \
                op.name in ('BININT', 'BININT1', 'BININT2'):
            out += value_op
        else:
            out += data[pos:end]
    return bytes(out)


def test_claimed_architecture_is_checked_before_anything_is_built(tmp_path, snapshot):
    """Constructor kwargs claiming z_dim = w_dim = 16384 (7.7 GiB of weights) fail on the stored tensors' shapes
    before a variable exists."""
    import resource
    import struct
    path, _, _ = snapshot
    data = path.read_bytes()
    big = struct.pack('<i', 16384)
    inflated = _with_kwarg(_with_kwarg(data, 'z_dim', b'J' + big), 'w_dim', b'J' + big)
    assert inflated != data
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match='does not fit the generator its arguments describe'):
        nvidia.load_network_pkl(io.BytesIO(inflated))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 << 10       # KiB.
    with pytest.raises(ValueError, match='bogus_argument'):
        nvidia.generator_from_state_dict('stylegan3-t', {'z_dim': 4, 'bogus_argument': 1}, {})


def test_malformed_constructor_arguments_are_errors():
    deep = {}
    for _ in range(10000):
        deep = {'a': deep}
    obj = torch_pickle.PersistentObject({'class_name': 'Generator', 'state': {'_init_kwargs': {'mapping_kwargs': deep}}})
    with pytest.raises(ValueError, match='nested more than'):
        nvidia._init_kwargs(obj)
    obj = torch_pickle.PersistentObject({'class_name': 'Generator', 'state': {'_init_kwargs': {1: 2}}})
    with pytest.raises(ValueError, match='non-string key'):
        nvidia._init_kwargs(obj)
    obj = torch_pickle.PersistentObject({'class_name': 'Generator', 'state': {'_init_kwargs': [1, 2]}})
    with pytest.raises(ValueError, match='malformed constructor arguments'):
        nvidia._init_kwargs(obj)
