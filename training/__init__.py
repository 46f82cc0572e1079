"""afgan_tf.training: the GAN model, losses, ADA, datasets, callbacks, and the training loop.

``train(options, run_dir)`` runs a training (see ``training_loop``); ``training_options(...)``
builds the options of a new run; ``RunDir`` owns a run directory's layout.
"""

from afgan_tf.training.training_loop import RunDir, TrainingError, train, training_options

__all__ = ['RunDir', 'TrainingError', 'train', 'training_options']
