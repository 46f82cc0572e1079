"""afgan_tf.cli.log_filter: TensorFlow's known C++ noise dropped from stderr, everything else kept."""

import os
import subprocess
import sys
import threading

import pytest

from afgan_tf.cli import log_filter

# As TensorFlow 2.21 printed them in the README's demo run on a CPU machine.
NOISE = [
    b"E0000 00:00:1796276071.879309   16349 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::"
    b"Apply error: fanout 'a/LeakyReluGrad' exist for missing node 'a/add'.\n",
    b"E0000 00:00:1796276072.684208   16349 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. "
    b"Falling back to the default Eigen-based implementation if present.\n",
    b"E0000 00:00:1700000000.1 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to "
    b"cuInit: UNKNOWN ERROR (303)\n",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
]


def _filtered(chunks):
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    got = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r_out, 'rb').read()))
    reader.start()
    worker = threading.Thread(target=log_filter.filter_stream, args=(r_in, w_out))
    worker.start()
    for chunk in chunks:
        os.write(w_in, chunk)
    os.close(w_in)
    worker.join()
    os.close(w_out)
    reader.join()
    os.close(r_in)
    return got[0]


@pytest.mark.parametrize('chunking', ['as written', 'one write', 'byte by byte'])
def test_noise_dropped_everything_else_kept_byte_for_byte(chunking):
    kept = [b'fid1k: generated 160/1000 images\n', b'\rprogress [###  ] 3/10', b'\rprogress [#####] 10/10\n',
            b'E0000 00:00:1.0 7 some_kernel.cc:1] a real error\n', b'Traceback (most recent call last):\n',
            b'Ending without a newline']
    stream = [NOISE[0], kept[0], kept[1], NOISE[1][:30], NOISE[1][30:] + kept[2], NOISE[2] + NOISE[3] + kept[3],
              kept[4], kept[5]]
    if chunking == 'one write':          # A progress bar's text and a log line then arrive as one line.
        stream = [b''.join(stream)]
    elif chunking == 'byte by byte':
        stream = [bytes([c]) for c in b''.join(stream)]
    assert _filtered(stream) == b''.join(kept)


def test_partial_lines_pass_at_once_unless_they_may_be_a_log_line():
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    worker = threading.Thread(target=log_filter.filter_stream, args=(r_in, w_out), daemon=True)
    worker.start()
    os.write(w_in, b'\rimages 3/10')                     # A progress bar's update: written through now.
    assert os.read(r_out, 100) == b'\rimages 3/10'
    os.write(w_in, b'\nE0000 00:00:1.0 7 x.cc:1] held')  # Possibly noise: waits for its end of line.
    assert os.read(r_out, 100) == b'\n'
    os.write(w_in, b' until here\n')
    assert os.read(r_out, 100) == b'E0000 00:00:1.0 7 x.cc:1] held until here\n'
    os.close(w_in)
    worker.join(5)
    for fd in (r_in, r_out, w_out):
        os.close(fd)


def test_nothing_lost_when_the_script_aborts(tmp_path):
    """The filter is a process of its own: what a dying script wrote last still comes out."""
    code = ('import os, sys\n'
            'from afgan_tf.cli import log_filter\n'
            'assert log_filter.install()\n'
            f'os.write(2, {NOISE[0]!r})\n'
            'sys.stderr.write("last words\\n"); sys.stderr.flush()\n'
            'os.abort()\n')
    env = {k: v for k, v in os.environ.items()}
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, env=env, timeout=60)
    assert done.returncode != 0
    assert done.stderr == b'last words\n'
