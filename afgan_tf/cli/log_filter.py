"""Drops TensorFlow's known, meaningless C++ log lines from a console script's stderr, for the whole run.

TensorFlow's C++ side writes to file descriptor 2 directly: at start-up (a CUDA driver search and a failed
``cuInit`` on a CPU machine, CPU feature notes) and later, while it builds and optimises graphs (grappler's
remapper giving up on one pattern, oneDNN falling back for one data type, at ERROR level although nothing
failed). To a newcomer on a CPU machine these read as failures. ``install()`` points fd 2 at a pipe read by a
small filter process, which writes every other byte to the real stderr as it arrives (partial lines too,
so progress bars still move) and drops only lines that match ``BENIGN_LINES``. The filter is a separate
process so that nothing is lost when the script dies: it drains the pipe until the last writer has gone,
even after an abort or a crash. It ignores Ctrl-C and the other signals sent to a whole process group.

This module imports nothing heavy: the filter process starts in milliseconds.
"""

import os
import re
import signal
import subprocess
import sys

# Lines that mean nothing on a working machine, by the C++ source that prints them.
BENIGN_LINES = (
    r'^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$',
    r'cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine',
    r'cuda_platform\.cc:\d+\] failed call to cuInit',
    r'cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register cu',
    r'computation_placer\.cc:\d+\] computation placer already registered',
    r'cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized',
    r'port\.cc:\d+\] oneDNN custom operations are on',           # CPUs where oneDNN is on by default.
    r'^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$',
    r'meta_optimizer\.cc:\d+\] remapper failed: ',                # Grappler skips one fusion; the graph runs.
    r'util\.cc:\d+\] oneDNN supports DT_BOOL only on platforms with AVX-512',   # A fallback, not a failure.
)
_BENIGN = re.compile('|'.join(f'(?:{p})' for p in BENIGN_LINES))
_LOG_STARTS = ('WARNING: All log', 'To enable the following')
_LOG_HEAD = re.compile(r'[IWEF]\d{4} |' + '|'.join(re.escape(h) for h in _LOG_STARTS))


def _may_grow_into_log(text):
    """Whether a partial line with no log head in it may grow into one (a whole head is _LOG_HEAD's)."""
    return re.fullmatch(r'[IWEF]\d{0,4}', text) is not None or any(h.startswith(text) for h in _LOG_STARTS)


def _held_from(text):
    """Where the part of a partial line that must wait for its end begins (len(text): nothing waits): the
    first log head in it (a C++ line may follow a progress bar's text without a newline), or a tail that may
    grow into one."""
    m = _LOG_HEAD.search(text)
    if m:
        return m.start()
    for i in range(max(0, len(text) - 24), len(text)):
        if text[i] in 'IWEFT' and _may_grow_into_log(text[i:]):
            return i
    return len(text)


_installed = None


def filter_stream(read_fd=0, write_fd=2):
    """Copies read_fd to write_fd until end of file, leaving out the benign lines."""
    pending = b''
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b'\n')
        out = [_kept(line) for line in lines]
        # The rest of a partial line (a progress bar's \r update) goes on now; a log line waits for its end.
        keep = _held_from(pending.decode('latin-1'))      # One character per byte: the index is a byte offset.
        if keep:
            out.append(pending[:keep])
            pending = pending[keep:]
        if out:
            _write_all(write_fd, b''.join(out))
    if pending and not _BENIGN.search(pending.decode(errors='replace')):
        _write_all(write_fd, pending)


def _kept(line):
    """What of a complete line (without its newline) goes on: all of it, or, for a benign log line, the text
    that came before the log head on the same line (a progress bar's), without the newline."""
    text = line.decode('latin-1')                 # One character per byte: indices are byte offsets.
    if not _BENIGN.search(text):
        return line + b'\n'
    head = _LOG_HEAD.search(text)
    return line[:head.start()] if head else b''


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def install():
    """Routes this process's fd 2 through the filter process (once); returns False where it could not."""
    global _installed
    if _installed is not None:
        return True
    try:
        sys.stderr.flush()
        # This file as a script: the standard library only, whatever sys.path the script had.
        child = subprocess.Popen([sys.executable, '-S', os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, close_fds=True)
    except OSError:
        return False
    if child.poll() is not None:     # It could not start: keep stderr as it is.
        return False
    original = os.dup(2)
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()              # fd 2 is now the pipe's only write end in this process.
    _installed = (child, original)
    import atexit
    atexit.register(_uninstall)
    return True


def _uninstall():
    """At exit: stderr straight to the terminal again, and the filter's last bytes written before we return."""
    global _installed
    if _installed is None:
        return
    child, original = _installed
    _installed = None
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(original, 2)
    os.close(original)
    try:
        child.wait(timeout=5)       # Children of ours that still hold the pipe keep it open: do not hang.
    except subprocess.TimeoutExpired:
        pass


if __name__ == '__main__':
    # Signals to the process group (Ctrl-C, a closed terminal, a job's stop) are for the script: the filter
    # ends when its last writer has gone, after forwarding what the script wrote last.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    filter_stream(0, 2)
