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
