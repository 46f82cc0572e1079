"""Reading files that may be hostile: regular files only, with a size limit.

A path may name a FIFO (reading it blocks forever), a device (``/dev/zero`` never ends) or a symlink to
either; ``read_regular_file`` opens without blocking, refuses anything but a regular file and reads at
most ``limit`` bytes.
"""

import os
import stat


class NotARegularFile(OSError):
    """The path is a FIFO, device, socket or directory, or the file is over the size limit."""


def read_regular_file(path, limit):
    """The bytes of the regular file ``path`` (symlinks followed), refusing files of more than ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    except IsADirectoryError:
        raise NotARegularFile(f'{path}: a directory, not a file') from None
    with os.fdopen(fd, 'rb') as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f'{path}: not a regular file (a FIFO, device or socket)')
        if info.st_size > limit:
            raise NotARegularFile(f'{path}: {info.st_size} bytes, more than the limit of {limit}')
        data = read_at_most(f, min(limit, info.st_size) + 1)
    if len(data) > limit:
        raise NotARegularFile(f'{path}: more than the limit of {limit} bytes')
    return data


def read_at_most(stream, limit, chunk=1 << 20):
    """Up to ``limit`` bytes of a stream, read in chunks (``read(n)`` of some streams allocates n bytes at once)."""
    parts, total = [], 0
    while total < limit:
        part = stream.read(min(chunk, limit - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b''.join(parts)


class TooLarge(ValueError):
    """A file or archive member declares more bytes than allowed (a decompression bomb, say)."""


MAX_INFLATION = 200     # A compressed zip member larger than 1 MiB may inflate to at most this times its size.


def read_zip_member(archive, member, limit):
    """The bytes of a zip member (a name or ZipInfo), refusing, before inflating anything, a member that
    declares more than ``limit`` bytes or inflates more than MAX_INFLATION-fold; never reads past its
    declared size."""
    import zipfile
    info = archive.getinfo(member) if isinstance(member, str) else member
    where = f'{getattr(archive, "filename", None) or "archive"}:{info.filename}'
    if info.file_size > limit:
        raise TooLarge(f'{where}: {info.file_size} bytes, more than the limit of {limit}')
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(1 << 20, MAX_INFLATION * info.compress_size):
        raise TooLarge(f'{where}: {info.compress_size} bytes inflating to {info.file_size} (a decompression bomb)')
    with archive.open(info) as f:
        return f.read(info.file_size)


def check_regular_file(path, limit):
    """Raises NotARegularFile unless ``path`` (symlinks followed) is a regular file of at most ``limit`` bytes."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFile(f'{path}: not a regular file')
    if info.st_size > limit:
        raise NotARegularFile(f'{path}: {info.st_size} bytes, more than the limit of {limit}')
    return path
