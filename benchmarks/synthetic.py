"""Synthetic datasets for the benchmarks: smooth random images in NVIDIA's zip format."""

import io
import json
import zipfile

import numpy as np


def write_dataset(path, count, resolution, channels=3, seed=0):
    """A zip of ``count`` smooth random PNGs (uncompressed, as afgan-dataset writes them); kept if present."""
    from PIL import Image
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix('.tmp')
    with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_STORED) as z:
        for i in range(count):
            small = rng.integers(0, 256, [8, 8, channels], dtype=np.uint8)
            img = Image.fromarray(small[:, :, 0] if channels == 1 else small)
            buf = io.BytesIO()
            img.resize((resolution, resolution), Image.BILINEAR).save(buf, format='png', compress_level=0)
            z.writestr(f'{i // 1000:05d}/img{i:08d}.png', buf.getvalue())
        z.writestr('dataset.json', json.dumps({'labels': None}))
    tmp.replace(path)
    return path
