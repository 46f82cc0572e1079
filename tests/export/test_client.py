"""afgan_tf.export.client against a local TF Serving stand-in."""

import numpy as np
import pytest

from afgan_tf import image_writing as images
from afgan_tf.export import client
from conftest import ServingStandIn


def test_rest_client_against_local_stand_in(exported, reference_dir):
    G, _, path = exported
    with ServingStandIn(path) as serving:
        rest = client.RestClient(serving.url, model='sg3', timeout=120)
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
        paths = [p for p, _ in serving.requests]
        assert paths[0] == '/v1/models/sg3:predict' and serving.requests[1][1]['signature_name'] == 'transformed'


def test_predict_body_validation():
    body = client.predict_body(np.zeros([2, 4]), truncation_psi=0.7)
    assert body['signature_name'] == 'serving_default' and body['inputs']['truncation_psi'] == 0.7
    with pytest.raises(ValueError, match='z must be'):
        client.predict_body(np.zeros([4]))
    with pytest.raises(ValueError, match='translate must be'):
        client.predict_body(np.zeros([2, 4]), translate=[[0, 0]])
