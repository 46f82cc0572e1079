"""afgan_tf.metrics: FID/KID/precision-recall, the equivariance metrics, spectra and texture sticking."""
