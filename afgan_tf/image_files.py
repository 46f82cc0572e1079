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


def iterate_images(source, max_images=None):
    """Yields ``(name, uint8 array [H, W, C])`` with C = 1 (grey) or 3 (RGB)."""
    from PIL import Image
    source = pathlib.Path(source)
    names = list_images(source)[:max_images]
    archive = zipfile.ZipFile(source) if not source.is_dir() else None
    try:
        for name in names:
            data = archive.read(name) if archive else (source / name).read_bytes()
            with Image.open(io.BytesIO(data)) as img:
                img = img.convert('L' if img.mode in ('L', 'I', 'I;16', '1') else 'RGB')
                array = np.asarray(img)
            yield name, array[:, :, np.newaxis] if array.ndim == 2 else array
    finally:
        if archive:
            archive.close()
