"""Hostile arguments for filtered_lrelu: no signal death, only clean errors or correct outputs.

At least 200 random argument sets (and the reported reproducers) go through three doors:
the public wrapper (``ops.filtered_lrelu``, compiled op), the compiled TensorFlow ops
called directly (no Python checks in front), and the CUDA kernels' C entry points built
for the CPU (``libafgan_flrelu_cuda_emulated.so``), whose size arithmetic is the GPU's.
The values are chosen to overflow 32-bit size arithmetic (46341^2 > 2^31, 65536 * 65536,
2^31 - 1 paddings, ...), to be out of range (0, negatives, NaN, inf), or of the wrong type.

Each case runs in a subprocess (tests/op_fuzz_worker.py). A worker runs cases one after
another to pay TensorFlow's start-up once; it announces every case before running it, so
a signal death is pinned on that case and a new worker goes on with the next one.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

WORKER = pathlib.Path(__file__).with_name('fuzz_worker.py')
from afgan_tf.custom_ops import cuda_api

from conftest import require_custom_op

require_custom_op()


SEED = 20261122


NUM_RANDOM = 240


BIG = [46341, 65535, 65536, 2 ** 24, 2 ** 24 + 1, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 2, 2 ** 63 - 1]


FACTORS = [0, -1, 1, 2, 3, 4, 64, 65, *BIG]


PADDINGS = [0, 1, 5, -1, -3, 1000, -2 ** 24, *BIG, *[-v for v in BIG[:7]]]


TAPS = [1, 2, 4, 12, 1024, 1025, 5000]


def _reproducers():
    """The cases of the report: crashes and silently wrong shapes of the old build."""
    base = dict(fu=None, fd=None, gain=1.4142, slope=0.2, clamp=None, flip_filter=False)
    return [
        dict(shape=[1, 2, 1, 2], kwargs=dict(up=46341, down=2 ** 31 - 1, padding=[0, 2 ** 30, 0, 0])),
        dict(shape=[1, 2, 4, 2], kwargs=dict(up=1, down=1, padding=[2 ** 31 - 1, 2 ** 31 - 1, 0, 0])),
        dict(shape=[1, 1, 65536, 1], kwargs=dict(up=65536, down=1, padding=[0, 0, 0, 0])),
    ], base


def _random_case(rng):
    """A valid random case (cuda_api.random_case) with 0 to 3 of its fields made hostile."""
    def pick(values):
        return values[int(rng.integers(len(values)))]

    shape, fu, fd, kw = cuda_api.random_case(rng)
    kwargs = dict(up=kw['up'], down=kw['down'], padding=list(kw['padding']), gain=kw['gain'], slope=kw['slope'],
                  clamp=kw['clamp'], flip_filter=kw['flip'])
    case = dict(shape=shape, kwargs=kwargs, fu=None if fu is None else list(fu.shape),
                fd=None if fd is None else list(fd.shape))
    mutations = {
        'up': lambda: kwargs.update(up=pick(FACTORS + [2.0, True, '2', None])),
        'down': lambda: kwargs.update(down=pick(FACTORS)),
        'padding': lambda: kwargs.update(padding=[pick(PADDINGS) if rng.random() < 0.5 else p
                                                  for p in kwargs['padding']]
                                         if isinstance(kwargs['padding'], list) else kwargs['padding']),
        'padding_form': lambda: kwargs.update(padding=pick([[1, 2], [1.5, 0, 0, 0], 'same', [True, 0, 0, 0],
                                                            [0, 0, 0], 3])),
        'gain': lambda: kwargs.update(gain=pick([0.0, -1.0, float('nan'), float('inf'), 1e30])),
        'slope': lambda: kwargs.update(slope=pick([-0.1, float('nan'), float('inf')])),
        'clamp': lambda: kwargs.update(clamp=pick([0.0, -1.0, float('nan'), float('inf')])),
        'fu': lambda: case.update(fu=pick([[t] for t in TAPS] + [[1024, 1024], [1025, 2], [3, 7]])),
        'fd': lambda: case.update(fd=pick([[t] for t in TAPS] + [[2, 1025], [5, 5]])),
        'shape': lambda: case.update(shape=pick([[0, 3, 3, 2], [1, 1, 65536, 1], [2, 1, 1, 1], [1, 7, 1, 33]])),
    }
    for name in rng.choice(sorted(mutations), size=int(rng.choice([0, 1, 1, 2, 3])), replace=False):
        mutations[name]()
    return case


def _cases():
    rng = np.random.default_rng(SEED)
    reproducers, base = _reproducers()
    cases = []
    for target in ('wrapper', 'raw_op', 'emulated'):
        for r in reproducers:
            cases.append(dict(target=target, shape=r['shape'], fu=None, fd=None,
                              kwargs={**base, **r['kwargs']}))
    for i in range(NUM_RANDOM):
        cases.append(dict(_random_case(rng), target=('wrapper', 'raw_op', 'emulated')[i % 3]))
    for index, case in enumerate(cases):
        case.update(index=index, seed=SEED + index)
    return cases


def _run_workers(cases, emulated_lib):
    """Runs every case; returns {index: (status, detail)}, with 'signal N' for a death."""
    results, todo = {}, list(cases)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    while todo:
        proc = subprocess.run([sys.executable, str(WORKER), str(emulated_lib)],
                              input=''.join(json.dumps(c) + '\n' for c in todo), capture_output=True, text=True,
                              env=env, timeout=900)
        started = None
        for line in proc.stdout.splitlines():
            word, _, rest = line.partition(' ')
            if word == 'start':
                started = int(rest)
            elif word == 'done':
                index, _, payload = rest.partition(' ')
                outcome = json.loads(payload)
                results[int(index)] = (outcome['status'], outcome['detail'])
                started = None
        if proc.returncode == 0:
            break
        if started is None:   # Died outside any case: report it rather than loop.
            raise AssertionError(f'worker failed (exit {proc.returncode}): {proc.stderr[-2000:]}')
        results[started] = (f'died with exit {proc.returncode}', proc.stderr[-500:])
        todo = [c for c in todo if c['index'] > started]
    return results


@pytest.fixture(scope='module')
def emulated_lib(tmp_path_factory):
    from afgan_tf.custom_ops import build
    lib = build.HERE / build.EMULATED_CUDA_NAME
    return lib if lib.is_file() else build.build_cuda_emulation(tmp_path_factory.mktemp('emu'))


def test_fuzz_hostile_arguments(emulated_lib):
    cases = _cases()
    print(f'seed {SEED}: {len(cases)} cases')
    assert len(cases) >= 200
    results = _run_workers(cases, emulated_lib)
    assert sorted(results) == [c['index'] for c in cases]
    bad = {i: r for i, r in results.items() if r[0] not in ('ok', 'error', 'large')}
    assert not bad, '\n'.join(f'case {i} {json.dumps(cases[i])}: {r}' for i, r in sorted(bad.items()))
    counts = {s: sum(r[0] == s for r in results.values()) for s in ('ok', 'error', 'large')}
    print(counts)
    # The mix must exercise both sides: correct outputs and clean refusals, through every door.
    for target in ('wrapper', 'raw_op', 'emulated'):
        statuses = [results[c['index']][0] for c in cases if c['target'] == target]
        assert statuses.count('ok') >= 10 and statuses.count('error') >= 20, (target, statuses)
    # The reported reproducers are refused with errors that name the argument.
    for case in cases[:9]:
        status, detail = results[case['index']]
        assert status == 'error' and any(w in detail for w in ('up', 'padding', 'down')), (case, detail)
