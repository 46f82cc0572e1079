"""Helpers shared by the console scripts: argument parsing, network loading, progress, errors."""

import contextlib
import math
import pathlib
import re
import shutil
import sys
import time

import numpy as np

MAX_SEED = 2 ** 32 - 1
MAX_SEEDS = 1_000_000      # Seeds in one --seeds (each is an image).


class UsageError(Exception):
    """Bad user input: printed as 'error: ...' with exit code 2, without a traceback."""


def fail(message, code=2):
    print(f'error: {message}', file=sys.stderr)
    sys.exit(code)


def parse_seeds(text):
    """'0-7' or '1,5,10-12' -> list of ints in [0, 2**32 - 1], at most MAX_SEEDS of them."""
    seeds = []
    for part in str(text).replace(' ', '').split(','):
        span = re.fullmatch(r'(-?\d+)-(-?\d+)', part)
        if span:
            lo, hi = int(span.group(1)), int(span.group(2))
            if hi < lo:
                raise UsageError(f'seed range {part!r} is empty')
            if len(seeds) + hi - lo + 1 > MAX_SEEDS:
                raise UsageError(f'--seeds {text!r} names {len(seeds) + hi - lo + 1} seeds; at most {MAX_SEEDS} '
                                 'at a time')
            seeds.extend(range(lo, hi + 1))
        elif re.fullmatch(r'-?\d+', part):
            seeds.append(int(part))
        else:
            raise UsageError(f'--seeds must be like 0-7 or 1,5,10-12, got {text!r}')
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise UsageError(f'seeds must be in [0, {MAX_SEED}], got {bad[:3]}')
    return seeds


def parse_pair(text, name, cast=float):
    """'a,b' -> (a, b)."""
    try:
        a, b = (cast(v) for v in str(text).split(','))
    except ValueError:
        raise UsageError(f'{name} must be two comma-separated numbers, got {text!r}') from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise UsageError(f'{name} must be finite numbers, got {text!r}')
    return a, b


def parse_grid(text):
    """'4x2' -> (4, 2) (columns, rows)."""
    try:
        gw, gh = (int(v) for v in str(text).lower().split('x'))
    except ValueError:
        raise UsageError(f'--grid must be like 4x2 (columns x rows), got {text!r}') from None
    if gw < 1 or gh < 1:
        raise UsageError(f'--grid must be positive, got {text!r}')
    return gw, gh


def seed_latents(seeds, z_dim):
    """z for each seed exactly as NVIDIA's tools draw it: RandomState(seed).randn(1, z_dim)."""
    return np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds]).astype(np.float32)


def load_generator(path, which='G_ema'):
    """The generator of any network the project reads (directory or .pkl); UsageError if unusable."""
    import pickle
    from afgan_tf import network_io, torch_pickle
    try:
        net = network_io.load_network(path)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    except (ValueError, pickle.UnpicklingError, torch_pickle.UnsafePickleError) as e:
        raise UsageError(f'cannot load network {path}: {e}') from None
    G = net.get(which)
    if G is None and which == 'G_ema':       # The default: a network saved with its trained G only.
        G = net.get('G')
    if G is None:
        held = [k for k in ('G', 'G_ema', 'D') if net.get(k) is not None]
        raise UsageError(f'{path} holds no {which} (it has {", ".join(held) or "no network"})')
    return G


def refuse_existing(path, force):
    """UsageError if ``path`` exists and --force was not given."""
    if pathlib.Path(path).exists() and not force:
        raise UsageError(f'{path} exists (use --force to replace it)')


@contextlib.contextmanager
def output_dir(path, force=False, must_be_new=False):
    """Creates ``path``; on failure removes what this call created (no partial output)."""
    path = pathlib.Path(path)
    existed = path.exists()
    if must_be_new:
        refuse_existing(path, force)
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        if not existed:
            shutil.rmtree(path, ignore_errors=True)
        raise


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total, label=''):
        self.total, self.label, self.start, self.count = max(total, 1), label, time.time(), 0

    def close(self):
        if self.count < self.total:
            sys.stderr.write('\n')
            sys.stderr.flush()

    def update(self, n=1):
        self.count += n
        frac = self.count / self.total
        elapsed = time.time() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = '#' * int(30 * frac)
        sys.stderr.write(f'\r{self.label} [{bar:<30}] {self.count}/{self.total} {elapsed:5.1f}s eta {eta:5.1f}s')
        if self.count >= self.total:
            sys.stderr.write('\n')
        sys.stderr.flush()


def _terminate(signum, frame):
    """SIGTERM as KeyboardInterrupt: the tools' cleanup (temporary files, half-written outputs) runs."""
    del frame
    raise KeyboardInterrupt(f'signal {signum}')


def start_tensorflow():
    """Routes stderr (fd 2) through ``log_filter`` for the rest of the run, so that TensorFlow's known,
    meaningless C++ lines (start-up, grappler, oneDNN) are dropped and every other byte is kept; then imports
    TensorFlow and lists its devices (where a CPU machine's cuInit fails). Does nothing special if the user
    set TF_CPP_MIN_LOG_LEVEL (every line stays)."""
    from afgan_tf import cli
    from afgan_tf.cli import log_filter
    if cli.USER_LOG_LEVEL is not None or 'tensorflow' in sys.modules:
        return
    log_filter.install()
    import tensorflow as tf
    tf.config.list_physical_devices()


def run_main(main):
    """absl main wrapper: quiet logging; UsageError -> 'error: ...' and exit 2; SIGTERM cleans up as Ctrl-C does."""
    def wrapped(argv):
        import signal
        from absl import flags, logging
        logging.set_verbosity(logging.WARNING)
        signal.signal(signal.SIGTERM, _terminate)
        start_tensorflow()
        for name in flags.FLAGS:            # NaN / inf never mean anything in a float flag.
            value = flags.FLAGS[name].value
            if isinstance(value, float) and not math.isfinite(value):
                fail(f'--{name} must be a finite number, got {value}')
        try:
            return main(argv)
        except UsageError as e:
            fail(str(e))
        except KeyboardInterrupt:
            print('interrupted', file=sys.stderr)
            sys.exit(130)
    return wrapped


def video_writer(path, fps):
    """(write(frame), close(), actual path)."""
    suffix = path.suffix.lower()
    if suffix == '.mp4':
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401  (provides the ffmpeg binary)
            writer = imageio.get_writer(str(path), fps=fps, codec='libx264', quality=8, macro_block_size=1)
            return writer.append_data, writer.close, path
        except ImportError:
            path = path.with_suffix('.gif')
            print(f'no MP4 encoder (pip install imageio imageio-ffmpeg): writing {path} instead')
            suffix = '.gif'
    if suffix in ('.gif', '.webp'):
        from PIL import Image
        frames = []

        def close():
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
        return lambda f: frames.append(Image.fromarray(f)), close, path
    raise UsageError(f'--out must end in .mp4, .gif or .webp, got {path.name}')
