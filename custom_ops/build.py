"""Builds the filtered_lrelu custom-op library: ``python -m afgan_tf.custom_ops.build``.

* Always: the C++ CPU kernels, compiled with g++ against ``tf.sysconfig`` flags.
* Always: the CUDA kernel source compiled for the CPU through a small CUDA
  emulation (``libafgan_flrelu_cuda_emulated.so``), which the tests use to check the
  CUDA kernels' logic on machines without a GPU.
* When nvcc is found (``$CUDA_HOME/bin/nvcc``, ``/usr/local/cuda/bin/nvcc`` or PATH):
  the CUDA kernels too, linked into the same library with ``-lcudart_static``, plus
  ``libafgan_flrelu_cuda.so``, the CUDA kernels alone behind their C entry points
  (no TensorFlow), for testing and timing on machines without TensorFlow.

Options: ``--no-cuda`` skips CUDA; ``--cuda-only-standalone`` builds only the
TensorFlow-free CUDA library (e.g. on a GPU machine without TensorFlow);
``--outdir DIR`` (default: this package's folder).
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
CC_DIR = HERE / 'cc'
OPS_SRC = CC_DIR / 'ops' / 'filtered_lrelu_ops.cc'
KERNELS_SRC = CC_DIR / 'kernels' / 'filtered_lrelu_kernels.cc'
CUDA_SRC = CC_DIR / 'kernels' / 'filtered_lrelu_kernels.cu.cc'
LIBRARY_NAME = 'afgan_filtered_lrelu.so'
STANDALONE_CUDA_NAME = 'libafgan_flrelu_cuda.so'
EMULATED_CUDA_NAME = 'libafgan_flrelu_cuda_emulated.so'
CUDA_ARCHS = ('80', '90')


def find_nvcc():
    candidates = [os.environ.get('CUDA_HOME', '') + '/bin/nvcc', '/usr/local/cuda/bin/nvcc', shutil.which('nvcc')]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _run(cmd):
    print('+', ' '.join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def _cpu_flags():
    """-march=native when the compiler accepts it (the library is built where it runs)."""
    probe = subprocess.run(['g++', '-march=native', '-x', 'c++', '-fsyntax-only', '-'], input=b'int main(){}',
                           capture_output=True)
    return ['-O3', '-march=native'] if probe.returncode == 0 else ['-O3']


def _gencode():
    flags = []
    for arch in CUDA_ARCHS:
        flags += ['-gencode', f'arch=compute_{arch},code=sm_{arch}']
    return flags


def build_standalone_cuda(nvcc, outdir):
    """The CUDA kernels with their C entry points only (no TensorFlow)."""
    out = outdir / STANDALONE_CUDA_NAME
    _run([nvcc, '-std=c++17', '-O3', '-shared', '-x', 'cu', '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr',
          '-DNDEBUG', *_gencode(), f'-I{CC_DIR / "kernels"}', CUDA_SRC, '-o', out, '-lcudart_static'])
    return out


def build_cuda_emulation(outdir):
    """The CUDA kernel source compiled for the CPU through cuda_emulation.h (tests without a GPU)."""
    out = pathlib.Path(outdir) / EMULATED_CUDA_NAME
    _run(['g++', '-std=c++17', '-O2', '-shared', '-fPIC', '-DAFGAN_CUDA_EMULATION', '-x', 'c++',
          f'-I{CC_DIR / "kernels"}', CUDA_SRC, '-o', out, '-lpthread'])
    return out


def build(outdir=HERE, use_cuda=True):
    """Builds the op library (and the standalone CUDA library when nvcc exists); returns its path."""
    import tensorflow as tf     # Imported here so --cuda-only-standalone works without TensorFlow.
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    compile_flags = list(tf.sysconfig.get_compile_flags())
    link_flags = list(tf.sysconfig.get_link_flags())
    include = [f'-I{CC_DIR / "kernels"}']
    nvcc = find_nvcc() if use_cuda else None
    objects, defines, cuda_link = [], [], []
    tmp = outdir / 'build_tmp'
    tmp.mkdir(exist_ok=True)
    if nvcc:
        cuda_home = pathlib.Path(nvcc).resolve().parent.parent
        cuda_obj = tmp / 'filtered_lrelu_kernels.cu.o'
        _run([nvcc, '-std=c++17', '-O3', '-c', '-x', 'cu', '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr',
              '-DGOOGLE_CUDA=1', '-DNDEBUG', *_gencode(), *include, CUDA_SRC, '-o', cuda_obj])
        objects.append(cuda_obj)
        defines = ['-DGOOGLE_CUDA=1', f'-I{cuda_home / "include"}']
        # The static CUDA runtime comes before TensorFlow's libraries so that our kernels
        # use it rather than whatever runtime symbols TensorFlow exports.
        cuda_link = [f'-L{cuda_home / "lib64"}', '-lcudart_static', '-ldl', '-lrt', '-lpthread']
        build_standalone_cuda(nvcc, outdir)
    else:
        print('nvcc not found (or --no-cuda): building the CPU kernels only', flush=True)
    build_cuda_emulation(outdir)
    out = outdir / LIBRARY_NAME
    _run(['g++', '-std=c++17', '-shared', '-fPIC', '-Wno-deprecated-declarations', *_cpu_flags(), *defines, *include, *compile_flags,
          OPS_SRC, KERNELS_SRC, *objects, '-o', out, *cuda_link, *link_flags])
    shutil.rmtree(tmp, ignore_errors=True)
    print(f'built {out}' + (' (CPU + CUDA kernels)' if nvcc else ' (CPU kernels)'), flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--outdir', default=str(HERE), help='Where to write the libraries.')
    parser.add_argument('--no-cuda', action='store_true', help='Build the CPU kernels only.')
    parser.add_argument('--cuda-only-standalone', action='store_true',
                        help='Build only the TensorFlow-free CUDA library (needs nvcc, not TensorFlow).')
    args = parser.parse_args(argv)
    try:
        if args.cuda_only_standalone:
            nvcc = find_nvcc()
            if nvcc is None:
                sys.exit('error: nvcc not found')
            build_standalone_cuda(nvcc, pathlib.Path(args.outdir))
        else:
            build(args.outdir, use_cuda=not args.no_cuda)
    except subprocess.CalledProcessError as e:
        sys.exit(f'error: build command failed with exit code {e.returncode}')


if __name__ == '__main__':
    main()
