"""afgan_tf.training."""
