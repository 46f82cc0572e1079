"""File size and CPU latency per image of each export format, measured in one run.

    pip install -e ".[onnx]"
    python benchmarks/bench_export.py [--network NET] [--batch 1] [--repeats 20]

Exports one generator (default: NVIDIA's StyleGAN3-T 32x32 reference network that the tests carry)
as a SavedModel, TFLite (float32 and float16 weights) and ONNX, runs each with its own runtime
(TensorFlow, tf.lite.Interpreter, onnxruntime) on the same latents, and prints a Markdown table:
size in MiB, the median latency per image over ``--repeats`` calls, and the largest difference
in uint8 pixel values from the SavedModel. Prints figures; asserts nothing.
"""

import lzma
import os
import pathlib
import shutil
import statistics
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags
import numpy as np
import tensorflow as tf

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_NETWORK = ROOT / 'tests' / 'data' / 'reference' / 'stylegan3-t_32' / 'network-snapshot.pkl.xz'

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network (project directory or NVIDIA .pkl); default: the tests\' SG3-T 32.')
flags.DEFINE_integer('batch', 1, 'Images per call.')
flags.DEFINE_integer('repeats', 20, 'Timed calls per format (after one warm-up call).')
flags.DEFINE_float('psi', 0.7, 'Truncation psi.')


def size_mib(path):
    path = pathlib.Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob('*') if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2 ** 20


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load(tmp):
    from afgan_tf.cli import common
    if FLAGS.network:
        return common.load_generator(FLAGS.network)
    pkl = tmp / 'network-snapshot.pkl'
    pkl.write_bytes(lzma.decompress(DEFAULT_NETWORK.read_bytes()))
    return common.load_generator(str(pkl))


def main(_):
    from afgan_tf.export import export_generator, portable
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='afgan_bench_export_'))
    try:
        G = load(tmp)
        z = np.random.default_rng(0).standard_normal([FLAGS.batch, G.z_dim]).astype(np.float32)
        psi = FLAGS.psi
        runners = {}
        saved = tf.saved_model.load(str(export_generator(G, tmp / 'savedmodel')))
        serve = saved.signatures['serving_default']
        runners['SavedModel'] = (tmp / 'savedmodel',
                                 lambda: serve(z=tf.constant(z), truncation_psi=tf.constant(psi))['images'].numpy())
        for name, fp16 in (('TFLite', False), ('TFLite float16', True)):
            path = portable.export_tflite(G, tmp / f'g{int(fp16)}.tflite', batch=FLAGS.batch, float16=fp16)
            gen = portable.TFLiteGenerator(path)
            runners[name] = (path, lambda gen=gen: gen(z, psi))
        try:
            path = portable.export_onnx(G, tmp / 'g.onnx', batch=FLAGS.batch)
            gen = portable.OnnxGenerator(path)
            runners['ONNX'] = (path, lambda gen=gen: gen(z, psi))
        except ImportError as e:
            print(f'ONNX skipped: {e}')
        expected = runners['SavedModel'][1]().astype(int)
        print(f'{G.architecture} {G.img_resolution}x{G.img_resolution}, batch {FLAGS.batch}, '
              f'{os.cpu_count()} CPUs, median of {FLAGS.repeats} calls\n')
        print('| format | size (MiB) | latency per image (ms) | max uint8 diff vs SavedModel |')
        print('|---|---|---|---|')
        for name, (path, fn) in runners.items():
            diff = int(np.max(np.abs(fn().astype(int) - expected)))
            seconds = median_seconds(fn, FLAGS.repeats) / FLAGS.batch
            print(f'| {name} | {size_mib(path):.2f} | {seconds * 1e3:.1f} | {diff} |', flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
