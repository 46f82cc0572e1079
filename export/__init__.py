"""afgan_tf.export: SavedModel export for TF Serving, and a serving client (``afgan_tf.export.client``)."""

from afgan_tf.export.saved_model import export_generator, graph_op_types

__all__ = ['export_generator', 'graph_op_types']
