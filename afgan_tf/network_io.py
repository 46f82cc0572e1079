"""The project's network format, and loading any network file the project knows.

Format: a directory with ``networks.json`` (format tag, version, each model's Keras
config, and extras such as the augmentation probability) and one
``<name>.weights.h5`` per model (``G``, ``D``, ``G_ema``). ``load_network`` also reads
NVIDIA network pickles (``.pkl``) through ``afgan_tf.nvidia.load_network_pkl``, and
afgan-train run directories (their latest checkpoint).
"""

import json
import os
import pathlib
import shutil
import tempfile

from afgan_tf.networks import Discriminator, Generator

FORMAT = 'afgan_tf-network'
VERSION = 1
MODEL_NAMES = ('G', 'D', 'G_ema')
_CLASSES = {'Generator': Generator, 'Discriminator': Discriminator}


def save_network(outdir, models, extras=None, overwrite=False):
    """Writes models (``{'G': ..., 'D': ..., 'G_ema': ...}``, any subset) to ``outdir`` atomically.

    Args:
        outdir: Target directory; it must not exist unless ``overwrite``.
        models: Keras models keyed by name.
        extras: JSON-serialisable values stored beside (e.g. ``augment_p``).
        overwrite: Replace an existing directory.
    """
    outdir = pathlib.Path(outdir)
    if outdir.exists() and not overwrite:
        raise FileExistsError(f'{outdir} exists (pass overwrite=True / --force to replace it)')
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise ValueError(f'models must be named among {MODEL_NAMES}, got {unknown}')
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{outdir.name}.', dir=outdir.parent))
    try:
        meta = {'format': FORMAT, 'version': VERSION, 'models': {}, 'extras': extras or {}}
        for name, model in models.items():
            if model is None:
                continue
            meta['models'][name] = {'class_name': type(model).__name__, 'config': model.get_config()}
            model.save_weights(str(tmp / f'{name}.weights.h5'))
        (tmp / 'networks.json').write_text(json.dumps(meta, indent=2))
        if outdir.exists():
            shutil.rmtree(outdir)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return outdir


def is_network_dir(path):
    return (pathlib.Path(path) / 'networks.json').is_file()


def _load_dir(path):
    path = pathlib.Path(path)
    meta = json.loads((path / 'networks.json').read_text())
    if meta.get('format') != FORMAT:
        raise ValueError(f'{path / "networks.json"} is not an {FORMAT} file')
    if meta.get('version', 0) > VERSION:
        raise ValueError(f'{path} was written by a newer afgan_tf (format version {meta["version"]})')
    out = {}
    for name, entry in meta['models'].items():
        cls = _CLASSES.get(entry['class_name'])
        if cls is None:
            raise ValueError(f'{path}: unknown model class {entry["class_name"]!r}')
        model = cls.from_config(entry['config'])
        model.load_weights(str(path / f'{name}.weights.h5'))
        out[name] = model
    out.update(meta.get('extras') or {})
    return out


def is_run_dir(path):
    from afgan_tf.training.training_loop import RunDir
    return RunDir.is_run_dir(path)


def _load_run_dir(path):
    """The newest intact checkpoint of an afgan-train run directory (models rebuilt from its options)."""
    from afgan_tf.training.training_loop import RunDir
    run = RunDir(path)
    options = run.read_options()
    G = Generator(**options['G_kwargs'])
    G_ema = Generator(**options['G_kwargs'])
    D = Discriminator(**options['D_kwargs'])
    latest = run.restore_newest(RunDir.checkpoint(G, D, G_ema), partial=True, log=lambda m: None)
    if latest is None:
        raise ValueError(f'{path} is a training run without a readable checkpoint yet')
    return {'G': G, 'D': D, 'G_ema': G_ema, 'architecture': options['cfg'], 'checkpoint': latest}


def load_network(path):
    """Loads ``G``/``D``/``G_ema`` (and extras) from a project network directory, an afgan-train run
    directory (its latest checkpoint), or an NVIDIA ``.pkl``.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for an unknown format.
    """
    text = str(path)
    if text.startswith(('http://', 'https://')):
        from afgan_tf import nvidia
        return nvidia.load_network_pkl(text)
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f'network not found: {path}')
    if path.is_dir():
        if is_run_dir(path):
            return _load_run_dir(path)
        if not is_network_dir(path):
            raise ValueError(f'{path} is a directory without networks.json: not an {FORMAT} directory '
                             'nor a training run')
        return _load_dir(path)
    with open(path, 'rb') as f:
        head = f.read(2)
    if head[:1] == b'\x80':         # A pickle (protocol 2+).
        from afgan_tf import nvidia
        return nvidia.load_network_pkl(path)
    raise ValueError(f'{path}: unknown network format (expected an {FORMAT} directory or an NVIDIA .pkl)')
