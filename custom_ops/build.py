"""Builds the filtered_lrelu custom-op library: ``python -m afgan_tf.custom_ops.build``.

* Always: the op (registration, shape functions, TensorFlow kernels) and the C++ CPU
  kernels, compiled with ``$CXX`` (default g++) against ``tf.sysconfig`` flags.
* Always: the CUDA kernel source compiled for the CPU through a small CUDA emulation
  (``libafgan_flrelu_cuda_emulated.so``), which the tests use to check the CUDA
  kernels' logic on machines without a GPU.
* When nvcc is found (``$CUDA_HOME/bin/nvcc``, ``/usr/local/cuda/bin/nvcc`` or PATH):
  the CUDA kernels too, linked into the same library with ``-lcudart_static``, plus
  ``libafgan_flrelu_cuda.so``, the CUDA kernels alone behind their C entry points
  (no TensorFlow), for testing and timing on machines without TensorFlow.

Portability: nothing is compiled for the build machine's CPU. Files that include
TensorFlow headers are compiled for the x86-64 baseline, with ``-mno-avx512fp16``
appended (TensorFlow 2.21's Eigen headers do not compile with AVX512-FP16 under
GCC 12, whatever turned it on: ``-march=native`` on a Sapphire Rapids CPU, or
``$CXXFLAGS``). The CPU kernels carry AVX-512, AVX2 and baseline copies of their
loops and choose one at run time (``filtered_lrelu_cpu.h``), so the library runs on
any x86-64 CPU and can be shipped in a wheel. ``$CXXFLAGS`` is added to every C++
compile.

Where: next to this file when that folder is writable (the source tree, or a
site-packages install), else ``$AFGAN_TF_CACHE/custom_ops`` (default
``~/.cache/afgan_tf/custom_ops``); ``afgan_tf.custom_ops`` looks in both.

Options: ``--no-cuda`` skips CUDA; ``--cuda-only-standalone`` builds only the
TensorFlow-free CUDA library (e.g. on a GPU machine without TensorFlow);
``--outdir DIR``; ``--optional``: a failed build prints why and how to retry, records
the reason for the run-time warning, and exits 0, so that a set-up script goes on
with the pure-TensorFlow path.
"""

import argparse
import concurrent.futures
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import traceback

HERE = pathlib.Path(__file__).resolve().parent
CC_DIR = HERE / 'cc'
KERNELS_DIR = CC_DIR / 'kernels'
OPS_SRC = CC_DIR / 'ops' / 'filtered_lrelu_ops.cc'
KERNELS_SRC = KERNELS_DIR / 'filtered_lrelu_kernels.cc'
CPU_SRC = KERNELS_DIR / 'filtered_lrelu_cpu.cc'
CUDA_SRC = KERNELS_DIR / 'filtered_lrelu_kernels.cu.cc'
TF_FACING_SOURCES = (OPS_SRC, KERNELS_SRC)      # Include TensorFlow headers: baseline ISA only.
LIBRARY_NAME = 'afgan_filtered_lrelu.so'
STANDALONE_CUDA_NAME = 'libafgan_flrelu_cuda.so'
EMULATED_CUDA_NAME = 'libafgan_flrelu_cuda_emulated.so'
FAILURE_NAME = 'build-failure.txt'              # Why the last --optional build failed (read by the loader).
CUDA_ARCHS = ('80', '90')
RETRY_HINT = 'python -m afgan_tf.custom_ops.build'


def cache_dir():
    """The per-user folder used when the package folder is read-only (afgan_tf.cache, imported here so
    that ``--cuda-only-standalone`` still runs where afgan_tf is not installed)."""
    from afgan_tf.cache import cache_dir as user_cache
    return user_cache('custom_ops', create=False)


def default_outdir():
    """This package's folder when writable, else the per-user cache folder."""
    return HERE if os.access(HERE, os.W_OK) else cache_dir()


def find_nvcc():
    candidates = [os.environ.get('CUDA_HOME', '') + '/bin/nvcc', '/usr/local/cuda/bin/nvcc', shutil.which('nvcc')]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def cxx():
    """The C++ compiler command: ``$CXX`` (may hold arguments) or g++."""
    return shlex.split(os.environ.get('CXX') or 'g++')


def user_cxxflags():
    return shlex.split(os.environ.get('CXXFLAGS', ''))


def _run(cmd):
    print('+', ' '.join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.stdout:
        print(result.stdout, end='', flush=True)
    if result.returncode != 0:
        raise BuildError(f'{pathlib.Path(str(cmd[0])).name} exited with code {result.returncode}',
                         _first_error(result.stdout))


class BuildError(RuntimeError):
    """A build step failed; ``detail`` is the compiler's first error line."""

    def __init__(self, message, detail=''):
        super().__init__(message + (f': {detail}' if detail else ''))
        self.detail = detail


def _first_error(output):
    lines = (output or '').splitlines()
    for line in lines:
        if 'error' in line.lower():
            return line.strip()[:300]
    return lines[-1].strip()[:300] if lines else ''


def _accepts(compiler, flag):
    """True when the compiler accepts ``flag`` (e.g. -mno-avx512fp16 needs GCC >= 12)."""
    try:
        probe = subprocess.run([*compiler, flag, '-x', 'c++', '-fsyntax-only', '-'], input=b'int main(){}',
                               capture_output=True)
    except OSError:
        return False
    return probe.returncode == 0


def baseline_guard_flags(compiler=None):
    """Flags appended to every file that includes TensorFlow headers (after any user flags)."""
    compiler = compiler or cxx()
    flags = ['-mno-avx512fp16'] if _accepts(compiler, '-mno-avx512fp16') else []
    # GCC 12+ warns about Eigen's use of std::hardware_destructive_interference_size in TensorFlow's headers
    # (48 lines per file, about nothing of ours): tested in its positive form, as GCC accepts any -Wno-*.
    return flags + (['-Wno-interference-size'] if _accepts(compiler, '-Winterference-size') else [])


def cpu_tuning_flags(compiler=None):
    """Tuning (not instruction-set) flags of the CPU kernels. GCC's generic tuning moves data in 128-bit
    pieces (-mmove-max=128), which spills the kernels' 16-float vectors through the stack: 256 made the
    AVX2 copy 1.5-1.8x faster on the development machine. Each function still uses only the vector
    width of its own instruction set (the baseline copy stays SSE2)."""
    compiler = compiler or cxx()
    flags = ['-mmove-max=256', '-mstore-max=256']
    return flags if _accepts(compiler, flags[0]) and _accepts(compiler, flags[1]) else []


def _tf_flags():
    import tensorflow as tf     # Imported here so --cuda-only-standalone works without TensorFlow.
    return list(tf.sysconfig.get_compile_flags()), list(tf.sysconfig.get_link_flags())


def _gencode():
    """SASS for each of CUDA_ARCHS, and PTX of the newest, which the driver compiles for newer GPUs."""
    flags = []
    for arch in CUDA_ARCHS:
        flags += ['-gencode', f'arch=compute_{arch},code=sm_{arch}']
    return flags + ['-gencode', f'arch=compute_{CUDA_ARCHS[-1]},code=compute_{CUDA_ARCHS[-1]}']


def _compile_all(jobs):
    """Runs compile commands in parallel (one per core); raises the first failure."""
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(_run, job) for job in jobs]:
            future.result()


def tf_facing_commands(outdir, extra_flags=(), cuda_defines=()):
    """Compile commands (to objects) of the files that include TensorFlow headers."""
    compile_flags, _ = _tf_flags()
    compiler = cxx()
    guard = baseline_guard_flags(compiler)
    commands = []
    for src in TF_FACING_SOURCES:
        obj = pathlib.Path(outdir) / (src.stem + '.o')
        commands.append([*compiler, '-std=c++17', '-O3', '-fPIC', '-c', '-Wno-deprecated-declarations',
                         *cuda_defines, f'-I{KERNELS_DIR}', *compile_flags, *user_cxxflags(), *extra_flags, *guard,
                         src, '-o', obj])
    return commands


def compile_tf_sources(outdir, extra_flags=()):
    """Compiles only the TensorFlow-facing files (a portability check); returns the object paths."""
    commands = tf_facing_commands(outdir, extra_flags)
    _compile_all(commands)
    return [pathlib.Path(str(c[-1])) for c in commands]


def build_standalone_cuda(nvcc, outdir):
    """The CUDA kernels with their C entry points only (no TensorFlow)."""
    out = pathlib.Path(outdir) / STANDALONE_CUDA_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([nvcc, '-std=c++17', '-O3', '-shared', '-x', 'cu', '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr',
          '-DNDEBUG', *_gencode(), f'-I{KERNELS_DIR}', CUDA_SRC, '-o', out, '-lcudart_static'])
    return out


def build_cuda_emulation(outdir):
    """The CUDA kernel source compiled for the CPU through cuda_emulation.h (tests without a GPU)."""
    out = pathlib.Path(outdir) / EMULATED_CUDA_NAME
    _run([*cxx(), '-std=c++17', '-O2', '-shared', '-fPIC', '-DAFGAN_CUDA_EMULATION', '-x', 'c++',
          f'-I{KERNELS_DIR}', CUDA_SRC, '-o', out, '-lpthread'])
    return out


def build(outdir=None, use_cuda=True):
    """Builds the op library (and the standalone CUDA library when nvcc exists); returns its path."""
    outdir = pathlib.Path(outdir) if outdir else default_outdir()
    outdir.mkdir(parents=True, exist_ok=True)
    compile_flags, link_flags = _tf_flags()
    nvcc = find_nvcc() if use_cuda else None
    tmp = outdir / 'build_tmp'
    tmp.mkdir(exist_ok=True)
    cuda_defines, cuda_link, objects = [], [], []
    jobs = []
    if nvcc:
        cuda_home = pathlib.Path(nvcc).resolve().parent.parent
        cuda_obj = tmp / 'filtered_lrelu_kernels.cu.o'
        jobs.append([nvcc, '-std=c++17', '-O3', '-c', '-x', 'cu', '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr',
                     '-DGOOGLE_CUDA=1', '-DNDEBUG', *_gencode(), f'-I{KERNELS_DIR}', CUDA_SRC, '-o', cuda_obj])
        objects.append(cuda_obj)
        cuda_defines = ['-DGOOGLE_CUDA=1', f'-I{cuda_home / "include"}']
        # The static CUDA runtime comes before TensorFlow's libraries so that our kernels
        # use it rather than whatever runtime symbols TensorFlow exports.
        cuda_link = [f'-L{cuda_home / "lib64"}', '-lcudart_static', '-ldl', '-lrt', '-lpthread']
    else:
        print('nvcc not found (or --no-cuda): building the CPU kernels only', flush=True)
    tf_jobs = tf_facing_commands(tmp, cuda_defines=cuda_defines)
    # The CPU kernels include no TensorFlow header; TensorFlow's flags keep the C++ ABI the same.
    cpu_obj = tmp / 'filtered_lrelu_cpu.o'
    cpu_job = [*cxx(), '-std=c++17', '-O3', '-fPIC', '-c', '-Wno-psabi', *cpu_tuning_flags(), f'-I{KERNELS_DIR}',
               *compile_flags, *user_cxxflags(), CPU_SRC, '-o', cpu_obj]
    jobs += tf_jobs + [cpu_job]
    objects = [pathlib.Path(str(j[-1])) for j in tf_jobs] + [cpu_obj] + objects
    _compile_all(jobs)
    out = outdir / LIBRARY_NAME
    _run([*cxx(), '-shared', '-fPIC', *user_cxxflags(), *objects, '-o', out, *cuda_link, *link_flags])
    if nvcc:
        build_standalone_cuda(nvcc, outdir)
    build_cuda_emulation(outdir)
    shutil.rmtree(tmp, ignore_errors=True)
    (outdir / FAILURE_NAME).unlink(missing_ok=True)
    print(f'built {out}' + (' (CPU + CUDA kernels)' if nvcc else ' (CPU kernels)'), flush=True)
    return out


def record_failure(outdir, reason):
    """Writes why the build failed where the loader looks, for its one run-time warning."""
    for folder in (pathlib.Path(outdir), cache_dir()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / FAILURE_NAME).write_text(reason + '\n')
            return folder / FAILURE_NAME
        except OSError:
            continue
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--outdir', default=None, help='Where to write the libraries (default: see above).')
    parser.add_argument('--no-cuda', action='store_true', help='Build the CPU kernels only.')
    parser.add_argument('--cuda-only-standalone', action='store_true',
                        help='Build only the TensorFlow-free CUDA library (needs nvcc, not TensorFlow).')
    parser.add_argument('--optional', action='store_true',
                        help='On failure, warn (why, and how to retry) and exit 0: the pure-TF path is used.')
    args = parser.parse_args(argv)
    outdir = pathlib.Path(args.outdir) if args.outdir else default_outdir()
    try:
        if args.cuda_only_standalone:
            nvcc = find_nvcc()
            if nvcc is None:
                sys.exit('error: nvcc not found')
            build_standalone_cuda(nvcc, outdir)
        else:
            build(outdir, use_cuda=not args.no_cuda)
    except Exception as e:  # noqa: BLE001 - any failure (compiler missing, compile error, TF import) is reported.
        reason = (str(e) if isinstance(e, (BuildError, OSError)) else
                  f'{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}').strip()
        if not args.optional:
            sys.exit(f'error: custom-op build failed: {reason}')
        record_failure(outdir, reason)
        print(f'warning: the filtered_lrelu custom op could not be built ({reason.splitlines()[0]}). '
              'Everything still works on the pure-TensorFlow path, only slower. '
              f'Retry with `{RETRY_HINT}` once the cause is fixed (it needs a C++17 compiler and TensorFlow).',
              file=sys.stderr, flush=True)


if __name__ == '__main__':
    main()
