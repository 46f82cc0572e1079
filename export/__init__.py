"""afgan_tf.export."""
