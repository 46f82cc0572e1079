"""A small client for generators served by TensorFlow Serving (``afgan_tf.export.client``).

    from afgan_tf.export.client import RestClient
    client = RestClient('http://localhost:8501', model='stylegan3')
    images = client.generate(z, truncation_psi=0.7)                 # uint8 [N, H, W, C]
    images = client.generate(z, translate=[[0.1, 0]], rotate=[10])  # the 'transformed' signature

REST uses ``requests`` when installed, else the standard library. ``GrpcClient`` needs
the ``tensorflow-serving-api`` and ``grpcio`` packages. Both only format requests and
parse responses; they do not need afgan_tf's models.
"""

import json
import urllib.request

import numpy as np


def predict_body(z, truncation_psi=1.0, translate=None, rotate=None, c=None):
    """The JSON body of a REST ``:predict`` call (columnar ``inputs`` format) and its signature name."""
    z = np.asarray(z, np.float32)
    if z.ndim != 2:
        raise ValueError(f'z must be [N, z_dim], got shape {z.shape}')
    inputs = {'z': z.tolist(), 'truncation_psi': float(truncation_psi)}
    signature = 'serving_default'
    if translate is not None or rotate is not None:
        n = z.shape[0]
        translate = np.zeros([n, 2], np.float32) if translate is None else np.asarray(translate, np.float32)
        rotate = np.zeros([n], np.float32) if rotate is None else np.asarray(rotate, np.float32)
        if translate.shape != (n, 2) or rotate.shape != (n,):
            raise ValueError(f'translate must be [{n}, 2] and rotate [{n}], got {translate.shape} and {rotate.shape}')
        inputs.update(translate=translate.tolist(), rotate=rotate.tolist())
        signature = 'transformed'
    if c is not None:
        inputs['c'] = np.asarray(c, np.float32).tolist()
    return {'signature_name': signature, 'inputs': inputs}


class RestClient:
    """TF Serving REST API (port 8501 by default)."""

    def __init__(self, url='http://localhost:8501', model='generator', version=None, timeout=60):
        self.url = url.rstrip('/')
        self.model, self.version, self.timeout = model, version, timeout

    @property
    def predict_url(self):
        version = f'/versions/{self.version}' if self.version is not None else ''
        return f'{self.url}/v1/models/{self.model}{version}:predict'

    def _post(self, body):
        data = json.dumps(body).encode()
        try:
            import requests
        except ImportError:
            requests = None
        if requests is not None:
            response = requests.post(self.predict_url, data=data, timeout=self.timeout)
            if response.status_code != 200:
                raise RuntimeError(f'TF Serving returned {response.status_code}: {response.text[:500]}')
            return response.json()
        request = urllib.request.Request(self.predict_url, data=data, headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:   # noqa: S310 (user URL)
            return json.loads(response.read())

    def generate(self, z, truncation_psi=1.0, translate=None, rotate=None, c=None):
        """uint8 images ``[N, H, W, C]`` for latents ``z``."""
        result = self._post(predict_body(z, truncation_psi, translate, rotate, c))
        outputs = result['outputs']
        if isinstance(outputs, dict):
            outputs = outputs['images']
        return np.asarray(outputs, np.uint8)


class GrpcClient:
    """TF Serving gRPC API (port 8500 by default); needs ``tensorflow-serving-api``."""

    def __init__(self, target='localhost:8500', model='generator', timeout=60):
        try:
            import grpc
            from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
        except ImportError as e:
            raise ImportError('GrpcClient needs the tensorflow-serving-api package '
                              '(pip install tensorflow-serving-api)') from e
        self._predict_pb2 = predict_pb2
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
        self.model, self.timeout = model, timeout

    def generate(self, z, truncation_psi=1.0, translate=None, rotate=None, c=None):
        import tensorflow as tf
        body = predict_body(z, truncation_psi, translate, rotate, c)
        request = self._predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.model_spec.signature_name = body['signature_name']
        for name, value in body['inputs'].items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32)))
        response = self._stub.Predict(request, self.timeout)
        return tf.make_ndarray(response.outputs['images']).astype(np.uint8)
