"""afgan_tf.metrics: image analysis and metrics (spectra, texture sticking; FID/KID/PR and equivariance to come)."""
