"""afgan_tf: StyleGAN3 (Alias-Free GAN) in TensorFlow 2 / Keras 3.

The top-level folders training/, metrics/, export/ and custom_ops/ are installed
under the afgan_tf namespace (afgan_tf.training, afgan_tf.metrics, ...), never as
top-level modules of their own.
"""

from setuptools import setup

SUBPACKAGES = ['training', 'metrics', 'export', 'custom_ops']

setup(
    name='afgan_tf',
    version='0.1.0',
    description='StyleGAN3 (Alias-Free GAN) and StyleGAN2 for TensorFlow 2 / Keras 3',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.11',
    packages=['afgan_tf', 'afgan_tf.cli'] + [f'afgan_tf.{name}' for name in SUBPACKAGES],
    package_dir={'afgan_tf': 'afgan_tf', **{f'afgan_tf.{name}': name for name in SUBPACKAGES}},
    # Everything `python -m afgan_tf.custom_ops.build` needs, so that a regular (non-editable)
    # install can build the op; never a library built here (it would be for this machine's
    # TensorFlow only).
    package_data={'afgan_tf.custom_ops': ['cc/ops/*.cc', 'cc/kernels/*.cc', 'cc/kernels/*.h', 'cuda_test/*.py'],
                  'afgan_tf.export': ['explore.html']},      # The afgan-explore page.
    exclude_package_data={'afgan_tf.custom_ops': ['*.so']},
    install_requires=[
        'tensorflow>=2.21,<2.22',
        'numpy',
        'scipy',
        'pillow',
        'absl-py',
        'tensorboard',
    ],
    extras_require={
        # The ONNX export and the explorer (in headless Chromium, through Playwright) are tested.
        'dev': ['pytest', 'pytest-timeout', 'pytest-xdist', 'tf2onnx', 'onnxruntime', 'playwright'],
        'onnx': ['tf2onnx', 'onnxruntime'],                 # afgan-export --format onnx.
        'plots': ['matplotlib'],                            # benchmarks/convergence.py.
        'video': ['imageio', 'imageio-ffmpeg'],            # MP4 output of afgan-video.
        'serving': ['requests', 'tensorflow-serving-api'],  # afgan_tf.export.client (REST / gRPC).
    },
    entry_points={'console_scripts': [
        'afgan-import=afgan_tf.cli.import_network:run',
        'afgan-export=afgan_tf.cli.export:run',
        'afgan-generate=afgan_tf.cli.generate:run',
        'afgan-video=afgan_tf.cli.video:run',
        'afgan-spectra=afgan_tf.cli.spectra:run',
        'afgan-sticking=afgan_tf.cli.sticking:run',
        'afgan-dataset=afgan_tf.cli.dataset:run',
        'afgan-train=afgan_tf.cli.train:run',
        'afgan-metrics=afgan_tf.cli.metrics:run',
        'afgan-project=afgan_tf.cli.project:run',
        'afgan-explore=afgan_tf.cli.explore:run',
        'afgan-directions=afgan_tf.cli.directions:run',
    ]},
)
