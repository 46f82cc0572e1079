"""SavedModel export of a generator for TensorFlow Serving (``afgan_tf.export``).

The model is written with ``keras.export.ExportArchive`` in TF Serving's layout
``<outdir>/<version>/``. Its graph contains stock TensorFlow ops only: the generator
runs the pure-TF reference path (never the custom op), so any TensorFlow runtime,
stock TF Serving included, loads it. Signatures (batch size free):

* ``serving_default``: ``z`` [N, z_dim] float32, ``truncation_psi`` scalar float32
  -> ``images`` uint8 [N, H, W, C];
* ``transformed`` (StyleGAN3): also ``translate`` [N, 2] (fractions of the image) and
  ``rotate`` [N] (degrees) -> ``images``;
* ``mapping``: ``z``, ``truncation_psi`` -> ``ws`` [N, num_ws, w_dim];
* ``synthesis``: ``ws`` -> ``images`` (uint8) and ``images_float`` (float32, about [-1, 1]).

Conditional generators take ``c`` [N, c_dim] as well. A NaN or inf input fails the request with
InvalidArgument naming the input; an empty batch (N = 0) returns empty outputs.
"""

import os
import pathlib
import shutil
import tempfile

import tensorflow as tf
import keras

from afgan_tf.image_writing import to_uint8_tf
from afgan_tf.transforms import make_transforms_tf


def _finite(value, name):
    """Fails the graph with InvalidArgument naming ``name`` if ``value`` has NaN or inf (CheckNumerics,
    a stock op: TF Serving returns the message)."""
    return tf.debugging.assert_all_finite(value, f'{name} must be finite (no NaN or inf)')


def _generator_endpoints(G):
    """``{name: (fn, input_signature)}`` for the exported signatures.

    Each signature is written once: conditional generators add a ``c`` input. Every input is
    checked for NaN / inf, and an empty batch returns empty outputs.
    """
    z_spec = tf.TensorSpec([None, G.z_dim], tf.float32, name='z')
    psi_spec = tf.TensorSpec([], tf.float32, name='truncation_psi')
    ws_spec = tf.TensorSpec([None, G.num_ws, G.w_dim], tf.float32, name='ws')
    c_specs = [tf.TensorSpec([None, G.c_dim], tf.float32, name='c')] if G.c_dim else []
    res, channels = G.img_resolution, G.img_channels

    def batch_of(x, fn, empty):
        """fn() for a non-empty batch, else ``empty`` (the networks need at least one sample)."""
        return tf.cond(tf.shape(x)[0] > 0, fn, lambda: empty)

    def no_images():
        return {'images': tf.zeros([0, res, res, channels], tf.uint8)}

    def generate(z, truncation_psi, c, transform=None):
        z, psi = _finite(z, 'z'), _finite(truncation_psi, 'truncation_psi')
        c = None if c is None else _finite(c, 'c')
        return batch_of(z, lambda: {'images': to_uint8_tf(G(z, c, truncation_psi=psi, transform=transform,
                                                              impl='ref'))}, no_images())

    def serving_default(z, truncation_psi, c=None):
        return generate(z, truncation_psi, c)

    def transformed(z, truncation_psi, translate, rotate, c=None):
        transform = make_transforms_tf(_finite(translate, 'translate'), _finite(rotate, 'rotate'))
        return generate(z, truncation_psi, c, transform)

    def mapping(z, truncation_psi, c=None):
        z, psi = _finite(z, 'z'), _finite(truncation_psi, 'truncation_psi')
        c = None if c is None else _finite(c, 'c')
        return batch_of(z, lambda: {'ws': G.mapping(z, c, truncation_psi=psi)},
                        {'ws': tf.zeros([0, G.num_ws, G.w_dim])})

    def synthesis(ws):
        ws = _finite(ws, 'ws')

        def run():
            img = G.synthesis(ws, impl='ref')
            return {'images': to_uint8_tf(img), 'images_float': img}
        return batch_of(ws, run, {**no_images(), 'images_float': tf.zeros([0, res, res, channels])})

    endpoints = {
        'serving_default': (serving_default, [z_spec, psi_spec] + c_specs),
        'mapping': (mapping, [z_spec, psi_spec] + c_specs),
        'synthesis': (synthesis, [ws_spec]),
    }
    if G.preset.accepts_transform:
        move_specs = [tf.TensorSpec([None, 2], tf.float32, name='translate'),
                      tf.TensorSpec([None], tf.float32, name='rotate')]
        endpoints['transformed'] = (transformed, [z_spec, psi_spec, *move_specs] + c_specs)
    return endpoints


def export_generator(G, outdir, version=1, force=False):
    """Writes ``G`` as a SavedModel to ``outdir/<version>`` and returns that path.

    Args:
        G: An ``afgan_tf.Generator``.
        outdir: The model's base directory (TF Serving's ``base_path``).
        version: Positive integer version (the subdirectory name).
        force: Replace an existing version directory.

    Raises:
        FileExistsError: the version directory exists and not ``force``.
        ValueError: bad version.
    """
    if not isinstance(version, int) or version < 1:
        raise ValueError(f'version must be a positive integer, got {version!r}')
    target = pathlib.Path(outdir) / str(version)
    if target.exists() and not force:
        raise FileExistsError(f'{target} exists (use --force to replace it)')
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = keras.export.ExportArchive()
    archive.track(G)
    for name, (fn, signature) in _generator_endpoints(G).items():
        archive.add_endpoint(name=name, fn=fn, input_signature=signature)
    # Write next to the target and move into place, so a failure leaves nothing behind.
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{version}.', dir=target.parent))
    try:
        archive.write_out(str(tmp / 'model'), verbose=False)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / 'model', target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def graph_op_types(saved_model_dir):
    """Every op type in a SavedModel's graphs (main graph and function library)."""
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(saved_model_dir) / 'saved_model.pb').read_bytes())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops
