"""Reading images from a folder or a zip of image files (PNG, JPEG, ...), as uint8 HWC arrays."""

import io
import pathlib
import zipfile

import numpy as np

IMAGE_EXTENSIONS = {'.png', '.jpg', '.jpeg', '.bmp', '.webp', '.ppm', '.tif', '.tiff', '.gif'}


def list_images(source):
    """Sorted image names in a folder (recursive) or a zip."""
    source = pathlib.Path(source)
    if not source.exists():
        raise FileNotFoundError(f'image source not found: {source}')
    if source.is_dir():
        return sorted(str(p.relative_to(source)) for p in source.rglob('*') if p.suffix.lower() in IMAGE_EXTENSIONS)
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            return sorted(n for n in z.namelist() if pathlib.PurePosixPath(n).suffix.lower() in IMAGE_EXTENSIONS)
    raise ValueError(f'{source} is neither a folder nor a zip of images')


GREY_MODES = ('1', 'L', 'LA', 'La', 'I', 'F', 'I;16', 'I;16L', 'I;16B', 'I;16N')


def channel_count(mode):
    """1 for a greyscale PIL mode (with or without alpha, any bit depth), else 3."""
    return 1 if mode in GREY_MODES else 3


def has_alpha(img):
    """Whether a PIL image has transparency (an alpha channel or a transparent palette / colour key)."""
    return img.mode in ('RGBA', 'RGBa', 'LA', 'La', 'PA') or 'transparency' in img.info


def to_array(img, channels=None):
    """A PIL image -> uint8 [H, W, C] with C = ``channels`` (1 or 3; default: the image's own count).

    16-bit and 32-bit greyscale (PNG 'I;16' / 'I') is scaled to 8 bits (v * 255 / 65535, rounded),
    not clipped; transparency is composited on black (value * alpha / 255, rounded), so fully transparent
    pixels are black whatever colour they store; grey -> RGB repeats the channel; RGB -> grey is ITU-R 601
    luma.
    """
    channels = channels or channel_count(img.mode)
    if has_alpha(img):
        pixels = np.asarray(img.convert('LA' if channels == 1 else 'RGBA'), np.float64)
        return np.round(pixels[..., :-1] * pixels[..., -1:] / 255).astype(np.uint8)
    if img.mode.startswith('I') or img.mode == 'F':
        wide = np.asarray(img, np.float64)
        grey = np.clip(np.round(wide * (255 / 65535)), 0, 255).astype(np.uint8)
        array = grey[:, :, np.newaxis] if channels == 1 else np.repeat(grey[:, :, np.newaxis], 3, axis=2)
        return array
    array = np.asarray(img.convert('L' if channels == 1 else 'RGB'))
    return array[:, :, np.newaxis] if array.ndim == 2 else array


MAX_IMAGE_FILE_BYTES = 256 << 20      # An image file (or zip member) larger than this is not read.


def open_images(source):
    """(names, read(name) -> bytes, close()) of a folder or zip of images. ``read`` takes only regular files
    (not FIFOs or devices, even through a symlink) of at most MAX_IMAGE_FILE_BYTES, and refuses zip members
    that declare more or inflate like a decompression bomb (``safe_files.NotARegularFile`` / ``TooLarge``)."""
    from afgan_tf import safe_files
    source = pathlib.Path(source)
    names = list_images(source)
    if source.is_dir():
        return names, lambda name: safe_files.read_regular_file(source / name, MAX_IMAGE_FILE_BYTES), lambda: None
    archive = zipfile.ZipFile(source)
    return names, lambda name: safe_files.read_zip_member(archive, name, MAX_IMAGE_FILE_BYTES), archive.close


def iterate_images(source, max_images=None):
    """Yields ``(name, uint8 array [H, W, C])`` with C = 1 (grey) or 3 (RGB)."""
    from PIL import Image
    names, read, close = open_images(source)
    try:
        for name in names[:max_images]:
            with Image.open(io.BytesIO(read(name))) as img:
                yield name, to_array(img)
    finally:
        close()
