"""Mobile and cross-framework export of a generator: TFLite and ONNX (``afgan_tf.export.portable``).

Both formats hold one function, the generator from latents to pixels:

* inputs ``z`` [N, z_dim] float32 and ``truncation_psi`` [] float32 (and ``c`` [N, c_dim] for a
  conditional generator);
* output ``images`` uint8 [N, H, W, C] (NHWC, as the SavedModel's ``serving_default``).

``batch`` fixes N (a static shape, which mobile runtimes like best) or leaves it free (``None``).
The graph is the pure-TF reference path (the custom op is never exported) with constant folding,
so the TFLite model uses built-in operators only and the ONNX model standard ONNX operators.

``export_tflite(..., float16=True)`` stores the weights as float16 (half the file; the interpreter
computes in float32). ``export_onnx`` needs ``tf2onnx`` (``pip install -e ".[onnx]"``).
``TFLiteGenerator`` and ``OnnxGenerator`` run the files with their own interpreters
(``tf.lite.Interpreter``, ``onnxruntime``) for checks and benchmarks.
"""

import warnings

import numpy as np
import tensorflow as tf

from afgan_tf.cache import write_atomically
from afgan_tf.image_writing import to_uint8_tf

ONNX_OPSET = 17


def _check_batch(batch):
    if batch is not None and (not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1):
        raise ValueError(f'batch must be a positive integer or None (dynamic), got {batch!r}')
    return None if batch is None else int(batch)


def input_signature(G, batch=None):
    """The TensorSpecs of the exported function's inputs (``z``, ``truncation_psi``[, ``c``])."""
    batch = _check_batch(batch)
    specs = [tf.TensorSpec([batch, G.z_dim], tf.float32, name='z'), tf.TensorSpec([], tf.float32, name='truncation_psi')]
    if G.c_dim:
        specs.append(tf.TensorSpec([batch, G.c_dim], tf.float32, name='c'))
    return specs


def generator_function(G, batch=None):
    """``tf.function`` (z, truncation_psi[, c]) -> {'images': uint8 NHWC} on the reference path."""
    signature = input_signature(G, batch)

    if G.c_dim:
        def generate(z, truncation_psi, c):
            return {'images': to_uint8_tf(G(z, c, truncation_psi=truncation_psi, impl='ref'))}
    else:
        def generate(z, truncation_psi):
            return {'images': to_uint8_tf(G(z, truncation_psi=truncation_psi, impl='ref'))}
    return tf.function(generate, input_signature=signature, autograph=False)


def export_tflite(G, path, batch=None, float16=False):
    """Writes ``G`` as a TFLite flatbuffer to ``path``; returns the path.

    Args:
        G: An ``afgan_tf.Generator``.
        path: The ``.tflite`` file to write (replaced if it exists).
        batch: Fixed batch size, or None for a dynamic batch (resize the input before use).
        float16: Store the weights as float16 (about half the size).
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    # Weights become constants (a self-contained flatbuffer without resource variables).
    frozen = convert_variables_to_constants_v2(generator_function(G, batch).get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], G)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return write_atomically(path, converter.convert())


def export_onnx(G, path, batch=None, opset=ONNX_OPSET):
    """Writes ``G`` as an ONNX model (through tf2onnx) to ``path``; returns the path."""
    try:
        import tf2onnx
    except ImportError as e:
        raise ImportError('ONNX export needs tf2onnx: pip install -e ".[onnx]" (or pip install tf2onnx)') from e
    fn = generator_function(G, batch)
    model, _ = tf2onnx.convert.from_function(fn, input_signature=input_signature(G, batch), opset=opset,
                                             output_path=None)
    return write_atomically(path, model.SerializeToString())


def _check_inputs(z, truncation_psi, c, z_dim, c_dim):
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f'z must be [N, {z_dim}], got shape {z.shape}')
    feeds = {'z': z, 'truncation_psi': np.asarray(truncation_psi, np.float32).reshape([])}
    if c_dim:
        if c is None:
            raise ValueError(f'c: this generator is conditional; give c [N, {c_dim}]')
        c = np.asarray(c, np.float32)
        if c.shape != (z.shape[0], c_dim):
            raise ValueError(f'c must be [{z.shape[0]}, {c_dim}], got shape {c.shape}')
        feeds['c'] = c
    return feeds


class TFLiteGenerator:
    """Runs an exported ``.tflite`` generator with ``tf.lite.Interpreter``: ``gen(z, psi)`` -> uint8 NHWC."""

    def __init__(self, path, num_threads=None):
        with warnings.catch_warnings():         # tf.lite.Interpreter's notice about ai_edge_litert.
            warnings.simplefilter('ignore', UserWarning)
            self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
        self.inputs = {d['name'].split(':')[0].split('serving_default_')[-1]: d
                       for d in self.interpreter.get_input_details()}
        self._output = self.interpreter.get_output_details()[0]
        self.z_dim = int(self.inputs['z']['shape'][1])
        self.c_dim = int(self.inputs['c']['shape'][1]) if 'c' in self.inputs else 0
        self._batch = None
        self.interpreter.allocate_tensors()

    def __call__(self, z, truncation_psi=1.0, c=None):
        feeds = _check_inputs(z, truncation_psi, c, self.z_dim, self.c_dim)
        n = feeds['z'].shape[0]
        if n != self._batch:
            fixed = self.inputs['z']['shape_signature'][0]
            if fixed != -1 and fixed != n:
                raise ValueError(f'z: this model has a fixed batch of {fixed}, got {n}')
            for name, detail in self.inputs.items():
                if name != 'truncation_psi':
                    self.interpreter.resize_tensor_input(detail['index'], list(feeds[name].shape))
            self.interpreter.allocate_tensors()
            self._batch = n
        for name, value in feeds.items():
            self.interpreter.set_tensor(self.inputs[name]['index'], value)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output['index'])


class OnnxGenerator:
    """Runs an exported ``.onnx`` generator with ``onnxruntime``: ``gen(z, psi)`` -> uint8 NHWC."""

    def __init__(self, path, num_threads=None):
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError('running the ONNX model needs onnxruntime (pip install onnxruntime)') from e
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        self.inputs = {i.name.split(':')[0]: i for i in self.session.get_inputs()}
        self.z_dim = int(self.inputs['z'].shape[1])
        self.c_dim = int(self.inputs['c'].shape[1]) if 'c' in self.inputs else 0

    def __call__(self, z, truncation_psi=1.0, c=None):
        feeds = _check_inputs(z, truncation_psi, c, self.z_dim, self.c_dim)
        fixed = self.inputs['z'].shape[0]
        if isinstance(fixed, int) and fixed != feeds['z'].shape[0]:
            raise ValueError(f'z: this model has a fixed batch of {fixed}, got {feeds["z"].shape[0]}')
        return self.session.run(None, {self.inputs[k].name: v for k, v in feeds.items()})[0]
