"""custom_ops/cuda_test/kernel_model.py: the CPU-side model of the CUDA kernels' tiling and its SASS reader."""

import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location('afgan_kernel_model',
                                                  ROOT / 'custom_ops' / 'cuda_test' / 'kernel_model.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


km = _load()


def _random_pass(rng):
    up, down = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    return km.Pass(up=up, down=down, pad=int(rng.integers(-6, 12)), taps=int(rng.integers(1, 14)),
                   in_len=int(rng.integers(1, 12)), out_len=int(rng.integers(1, 20)))


def _taps_hit(s, o):
    """Input indices that output o of pass s reads (brute force over the zero-inserted signal)."""
    j = o * s.down + np.arange(s.taps) - s.pad
    keep = (j % s.up == 0) & (j >= 0) & (j // s.up < s.in_len)
    return j[keep] // s.up


def test_tap_counts_and_input_spans_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        s = _random_pass(rng)
        counts = s.tap_counts()
        assert counts.tolist() == [len(_taps_hit(s, o)) for o in range(s.out_len)], s
        o0 = int(rng.integers(0, s.out_len))
        count = int(rng.integers(1, s.out_len - o0 + 1))
        read = np.concatenate([_taps_hit(s, o) for o in range(o0, o0 + count)])
        lo, length = s.input_span(o0, count)
        if read.size:       # The span holds every input read: exactly those when the windows overlap.
            assert lo <= read.min() and read.max() < lo + length, (s, o0, count)
            if s.taps >= s.down:
                assert (lo, length) == (read.min(), read.max() - read.min() + 1), (s, o0, count)
        elif s.taps >= s.down:
            assert length == 0


def _cases(rng, n, api=km.cuda_api):
    for _ in range(n):
        shape, fu, fd, kw = api.random_case(rng, max_size=14, max_channels=11)
        yield api.prepare(shape, fu, fd, **kw)[0]


def test_sizes_are_the_kernels_output_shape(emulated):
    api, kernels = emulated
    rng = np.random.default_rng(1)
    for p in _cases(rng, 100, api):
        _, _, out_w, out_h = km.sizes(p)
        assert kernels.output_shape(p) == [p.n, out_h, out_w, p.c]


def test_one_tile_over_the_whole_image_runs_the_ideal_forward():
    rng = np.random.default_rng(2)
    for p in _cases(rng, 60):
        m = km.model_call(p, backward=False, smem_cap_kb=1 << 30, tiles=(1 << 20,))
        tmp_w, tmp_h, out_w, out_h = km.sizes(p)
        assert m['taps'] == m['ideal_taps'] and m['blocks'] == p.n * -(-p.c // 8)
        ideal = 4 * p.n * p.c * (p.h * p.w + out_h * out_w)                     # x once, y once
        assert m['ideal_bytes'] == ideal + p.n * p.c * tmp_h * tmp_w / 4         # + 2-bit signs;
        words = p.n * tmp_h * tmp_w * -(-p.c // 16) * 4                        # Sign bytes, 16 channels a word.
        assert 4 * p.n * p.c * out_h * out_w <= m["bytes"] - 2 * words <= ideal  # x read at most once.
        # The gradient reads dy and the signs, with no up pass: one tile runs the ideal gradient.
        g = km.model_call(p, backward=True, smem_cap_kb=1 << 30, tiles=(1 << 20,))
        assert g['taps'] == g['ideal_taps']
        assert g['bytes'] <= 4 * p.n * p.c * (p.h * p.w + out_h * out_w) + words


def test_tiles_recompute_their_halo():
    rng = np.random.default_rng(3)
    more = 0
    for p in _cases(rng, 40):
        # With fewer taps than the stride of the pass into the output tile (down forward, up in the gradient)
        # the tiles read every stride-th intermediate sample, and the whole image's hull (the ideal's region)
        # holds samples that no tile needs: the StyleGAN3 layers have more taps than stride.
        for backward in (False, True):
            if min(p.fu_w, p.fu_h) < p.up if backward else min(p.fd_w, p.fd_h) < p.down:
                continue
            ideal = km.model_call(p, backward, 1 << 30, (1 << 20,))['ideal_taps']
            tiled = [km.model_call(p, backward, 1 << 30, (t,)) for t in (4, 1)]
            assert all(m['ideal_taps'] == ideal and m['taps'] >= ideal for m in tiled)
            more += tiled[1]['taps'] > ideal
    assert more > 20      # 1x1 tiles rerun the overlapping filter windows in most cases.


def test_the_kernels_tiling_of_stylegan3_t():
    """The launcher's choice for StyleGAN3-T at 256^2 (96 KB cap): 8x8 tiles for the up-2 layers, 16 forward and
    4 in the gradient of the up-4 layers, whose halo makes the gradient run 3.8x the ideal taps (over 6x while the
    gradient recomputed the up pass)."""
    cases = {name: km.cuda_api.prepare(shape, fu, fd, **kw)[0] for name, shape, fu, fd, kw in
             km.layer_cases('stylegan3-t')}
    fwd, bwd = km.model_call(cases['L0_36_512'], False), km.model_call(cases['L3_52_512'], True)
    assert (fwd['tile'], round(fwd['smem'] / 1024, 1)) == (8, 45.9)
    assert bwd['tile'] == 4 and 3.5 < bwd['taps'] / bwd['ideal_taps'] < 4
    assert km.blocks_per_sm(fwd['smem'], 40) == 4 and km.blocks_per_sm(96 * 1024, 40) == 2
    with pytest.raises(ValueError, match='shared-memory cap'):
        km.model_call(cases['L3_52_512'], True, smem_cap_kb=1)


SASS = """
        Function : _ZN61_GLOBAL__N__abc_28_filtered_lrelu_kernels_cu_cc_1e01c77f13ForwardKernelE17AfganFlreluParams
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   MUFU.RCP R4, R5 ;
        /*0020*/                   IMAD.HI.U32 R6, R4, R7, RZ ;
        /*0030*/                   LEA R8, R8, R0, 0x3 ;
        /*0040*/                   LDC R9, c[0x3][R9] ;
        /*0050*/                   LDS R10, [R8] ;
        /*0060*/                   FFMA R11, R9, R10, R11 ;
        /*0070*/              @!P0 BRA 0x30 ;
        /*0080*/               @P1 BRA 0x10 ;
        /*0090*/                   STL [R1], R11 ;
        /*00a0*/                   EXIT ;
"""


def test_sass_reader_counts_the_inner_loop():
    funcs = km.parse_sass(SASS)
    (name, insns), = funcs.items()
    assert name.endswith('ForwardKernelE17AfganFlreluParams') and len(insns) == 11
    (loop,) = km.inner_loops(insns)
    assert loop == dict(start=0x30, insns=5, ffma=1, ldc_indexed=1, lds=1, division=0, division_per_element=1)
