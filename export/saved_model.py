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

Conditional generators take ``c`` [N, c_dim] as well.
"""

import os
import pathlib
import shutil
import tempfile

import tensorflow as tf
import keras

from afgan_tf.images import to_uint8_tf
from afgan_tf.transforms import make_transforms_tf


def _generator_endpoints(G):
    """``{name: (fn, input_signature)}`` for the exported signatures."""
    z_spec = tf.TensorSpec([None, G.z_dim], tf.float32, name='z')
    psi_spec = tf.TensorSpec([], tf.float32, name='truncation_psi')
    ws_spec = tf.TensorSpec([None, G.num_ws, G.w_dim], tf.float32, name='ws')
    c_specs = [tf.TensorSpec([None, G.c_dim], tf.float32, name='c')] if G.c_dim else []
    is_sg3 = G.architecture.startswith('stylegan3')

    def images(img):
        return {'images': to_uint8_tf(img)}

    if G.c_dim:
        def serving_default(z, truncation_psi, c):
            return images(G(z, c, truncation_psi=truncation_psi, impl='ref'))

        def transformed(z, truncation_psi, translate, rotate, c):
            transform = make_transforms_tf(translate, rotate)
            return images(G(z, c, truncation_psi=truncation_psi, transform=transform, impl='ref'))

        def mapping(z, truncation_psi, c):
            return {'ws': G.mapping(z, c, truncation_psi=truncation_psi)}
    else:
        def serving_default(z, truncation_psi):
            return images(G(z, truncation_psi=truncation_psi, impl='ref'))

        def transformed(z, truncation_psi, translate, rotate):
            transform = make_transforms_tf(translate, rotate)
            return images(G(z, truncation_psi=truncation_psi, transform=transform, impl='ref'))

        def mapping(z, truncation_psi):
            return {'ws': G.mapping(z, truncation_psi=truncation_psi)}

    def synthesis(ws):
        img = G.synthesis(ws, impl='ref')
        return {'images': to_uint8_tf(img), 'images_float': img}

    endpoints = {
        'serving_default': (serving_default, [z_spec, psi_spec] + c_specs),
        'mapping': (mapping, [z_spec, psi_spec] + c_specs),
        'synthesis': (synthesis, [ws_spec]),
    }
    if is_sg3:
        endpoints['transformed'] = (transformed, [z_spec, psi_spec, tf.TensorSpec([None, 2], tf.float32, name='translate'),
                                                  tf.TensorSpec([None], tf.float32, name='rotate')] + c_specs)
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
