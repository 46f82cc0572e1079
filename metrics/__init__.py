"""afgan_tf.metrics."""
