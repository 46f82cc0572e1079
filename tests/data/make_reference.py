"""Regenerates tests/data/reference/, the trimmed copy of NVIDIA's reference data that the tests read.

    python tests/data/make_reference.py [--source ../shared/reference] [--dest tests/data/reference]

The source is the data NVIDIA's StyleGAN3 code produced (``../shared/reference/``, see its
README). The copy keeps, at most 12 MB in all:

* the three small networks: ``meta.json``, ``G.npz``, ``D.npz`` and every input/output of
  ``io.npz`` (z, ws, images, transformed images, logits), and for StyleGAN3 the first
  ``ACT_CHANNELS`` channels of every per-layer activation (full height and width);
* ``stylegan3-t_32/network-snapshot.pkl.xz``: the training-snapshot pickle, xz-compressed
  (the tests decompress it to the original bytes). Its
  ``G_ema`` and ``D`` are the weights of that network's ``G.npz`` / ``D.npz``, which are
  therefore not stored twice: the tests read that network's weights from the pickle's
  raw state dicts (this script checks that they are identical, bit for bit);
* the op, upfirdn2d and filter-design cases and the full-size layer tables, unchanged;
* ``inception_features.npz``: the first ``INCEPTION_IMAGES`` images, as the uint8 values
  they are (exact, smaller), and NVIDIA's 2048-d features of them;
* ``training_steps/<net>/``: NVIDIA's recorded training steps, at most 30 MB for the three, with
  ``steps.json`` unchanged and the arrays of ``steps.npz`` the replay reads for its checks, less
  what does not fit (``trim_trace``): the inputs of every step, the step-0 gradients and reported
  values of every phase, D's weights after each step-0 D phase (their ``params_after``, so that
  each D phase's optimizer check measures its own update, not the sum of the D phases'), the
  buffers after every step and the final G and D. Left out: the gradients of the later steps,
  the other ``params_after`` (the replay rebuilds a phase's inputs from its recorded gradients),
  ``final/G_ema``, duplicates (``gen_z/<phase>``, ``pl_noise``) and the later steps' per-sample
  reports (``steps.json`` has their means). The initial ``G.npz`` / ``D.npz`` are the network's
  (``<net>/G.npz``, or the pickle's G_ema and D), checked bit for bit and not stored twice: the
  tests put them in place.

Every array is copied bit for bit (no recomputation). Prints the sizes and fails if the
copy is over the limit.
"""

import argparse
import json
import lzma
import pathlib
import shutil
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_SOURCE = ROOT.parent / 'shared' / 'reference'
DEFAULT_DEST = HERE / 'reference'
NETWORKS = ('stylegan3-t_32', 'stylegan3-r_32', 'stylegan2_32')
PICKLE_NETWORK = 'stylegan3-t_32'        # Its weights live in the pickle only.
ACT_CHANNELS = 2                         # Channels kept of each per-layer activation.
INCEPTION_IMAGES = 2                     # Images kept of the Inception case.
LIMIT_BYTES = 12 * 1000 * 1000
TRACE_LIMIT_BYTES = 30 * 1000 * 1000     # The three training-step traces.
TRACES = 'training_steps'
COPIED = ('ops.json', 'ops.npz', 'lowpass_filters.json', 'layer_tables')


def _savez(path, arrays):
    np.savez_compressed(path, **arrays)


def _pickle_state_dicts(path):
    """{'G_ema': state dict, 'D': state dict} of a network pickle, as NVIDIA's names and arrays."""
    sys.path.insert(0, str(ROOT))
    from afgan_tf import torch_pickle
    with open(path, 'rb') as f:
        data = torch_pickle.load(f)
    return {key: {k: np.asarray(v) for k, v in torch_pickle.module_state_dict(data[key]).items()}
            for key in ('G_ema', 'D')}


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def trim_network(src, dest, name):
    (dest / name).mkdir(parents=True)
    shutil.copy2(src / name / 'meta.json', dest / name / 'meta.json')
    io = dict(np.load(src / name / 'io.npz'))
    trimmed = {k: v for k, v in io.items() if not k.startswith('act_')}
    trimmed.update({k: np.ascontiguousarray(v[:, :ACT_CHANNELS]) for k, v in io.items() if k.startswith('act_')})
    _savez(dest / name / 'io.npz', trimmed)
    if name == PICKLE_NETWORK:
        raw = (src / name / 'network-snapshot.pkl').read_bytes()
        (dest / name / 'network-snapshot.pkl.xz').write_bytes(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
        from_pickle = _pickle_state_dicts(src / name / 'network-snapshot.pkl')
        for key, npz in (('G_ema', 'G.npz'), ('D', 'D.npz')):
            stored = dict(np.load(src / name / npz))
            missing = [k for k in stored if k not in from_pickle[key] or not _same(stored[k], from_pickle[key][k])]
            if missing:
                raise SystemExit(f'error: {name}/{npz} differs from the pickle\'s {key} at {missing[:5]}; '
                                 'keep the .npz files in the copy instead')
    else:
        for npz in ('G.npz', 'D.npz'):
            shutil.copy2(src / name / npz, dest / name / npz)


def _keep_trace_key(key, phases_of_D):
    """The arrays of steps.npz that the trimmed trace keeps (see the module docstring)."""
    parts = key.split('/')
    if key.startswith(('final/G/', 'final/D/')) or key in ('pl_mean/before', 'final/pl_mean'):
        return True
    if parts[0].startswith('step') and len(parts) >= 2:
        step0 = parts[0] == 'step0'
        if parts[1] in ('real_img', 'all_gen_z', 'after'):
            return True
        if len(parts) >= 3 and parts[2] in ('mix_cutoff', 'mix_z', 'pl_randn'):
            return True
        if step0 and len(parts) >= 3 and parts[2] in ('grad', 'report', 'pl_mean_before', 'pl_mean_after'):
            return True
        if step0 and len(parts) >= 3 and parts[2] == 'params_after' and parts[1] in phases_of_D:
            return True
    return False


def _initial_state(src, name):
    """(G, D) state dicts of a reference network as the trimmed copy holds them."""
    if (src / name / 'G.npz').is_file() and name != PICKLE_NETWORK:
        return dict(np.load(src / name / 'G.npz')), dict(np.load(src / name / 'D.npz'))
    states = _pickle_state_dicts(src / name / 'network-snapshot.pkl')
    return states['G_ema'], states['D']


def trim_trace(src, dest, name):
    source, target = src / TRACES / name, dest / TRACES / name
    target.mkdir(parents=True)
    shutil.copy2(source / 'steps.json', target / 'steps.json')
    config = json.loads((source / 'steps.json').read_text())
    network = config.get('network', name)
    G_state, D_state = _initial_state(src, network)
    for npz, reference in (('G.npz', G_state), ('D.npz', D_state)):
        stored = dict(np.load(source / npz))
        if set(stored) != set(reference) or any(not _same(stored[k], reference[k]) for k in stored):
            raise SystemExit(f'error: {TRACES}/{name}/{npz} is not {network}\'s initial state; copy it instead')
    phases_of_D = {p['name'] for p in config['phases'] if p['module'] == 'D'}
    with np.load(source / 'steps.npz') as z:
        kept = {k: z[k] for k in z.files if _keep_trace_key(k, phases_of_D)}
    _savez(target / 'steps.npz', kept)


def trim_inception(src, dest):
    data = np.load(src / 'inception_features.npz')
    x = data['inputs_nchw'][:INCEPTION_IMAGES]
    u8 = np.round(x * 128 + 128).astype(np.uint8)
    if not np.array_equal((u8.astype(np.float32) - 128) / 128, x):
        raise SystemExit('error: inception inputs are not exact uint8 values')
    _savez(dest / 'inception_features.npz', {'inputs_nchw_uint8': u8, 'features': data['features'][:INCEPTION_IMAGES]})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--source', type=pathlib.Path, default=DEFAULT_SOURCE)
    parser.add_argument('--dest', type=pathlib.Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    if not (args.source / 'ops.json').is_file():
        raise SystemExit(f'error: no reference data at {args.source}')
    if args.dest.exists():
        shutil.rmtree(args.dest)
    args.dest.mkdir(parents=True)
    for name in NETWORKS:
        trim_network(args.source, args.dest, name)
    for name in COPIED:
        (shutil.copytree if (args.source / name).is_dir() else shutil.copy2)(args.source / name, args.dest / name)
    trim_inception(args.source, args.dest)
    if (args.source / TRACES).is_dir():
        for trace in sorted(p.name for p in (args.source / TRACES).iterdir() if (p / 'steps.json').is_file()):
            trim_trace(args.source, args.dest, trace)
    (args.dest / 'README.md').write_text(
        '# Trimmed reference data\n\n'
        'Made by `tests/data/make_reference.py` from the data NVIDIA\'s StyleGAN3 code produced '
        '(`../shared/reference/`, whose README describes every file); do not edit by hand.\n'
        f'Differences from the source: per-layer activations keep their first {ACT_CHANNELS} channels; '
        f'`{PICKLE_NETWORK}` has no G.npz / D.npz (its weights are the pickle\'s G_ema and D, identical); '
        f'`inception_features.npz` keeps {INCEPTION_IMAGES} images, stored as uint8 (`inputs_nchw_uint8`, normalise as '
        '(x - 128) / 128); `network-snapshot.pkl` is xz-compressed (`.pkl.xz`, the same bytes once decompressed); '
        f'`{TRACES}/<net>/` keeps the arrays listed in `tests/data/make_reference.py` and no G.npz / D.npz '
        '(the network\'s own, identical; the tests put them in place).\n')
    files = sorted(p for p in args.dest.rglob('*') if p.is_file())
    traces = [p for p in files if p.relative_to(args.dest).parts[0] == TRACES]
    total = sum(p.stat().st_size for p in files if p not in traces)
    trace_total = sum(p.stat().st_size for p in traces)
    for p in files:
        print(f'{p.stat().st_size:>10}  {p.relative_to(args.dest)}')
    print(f'{total:>10}  total without the traces ({total / 1e6:.2f} MB, limit {LIMIT_BYTES / 1e6:.0f} MB)')
    print(f'{trace_total:>10}  the training-step traces ({trace_total / 1e6:.2f} MB, limit '
          f'{TRACE_LIMIT_BYTES / 1e6:.0f} MB)')
    if total > LIMIT_BYTES or trace_total > TRACE_LIMIT_BYTES:
        raise SystemExit('error: the trimmed copy is over the limit')
    print(json.dumps({'files': len(files), 'bytes': total, 'trace_bytes': trace_total}))


if __name__ == '__main__':
    main()
