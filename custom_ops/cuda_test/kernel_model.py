"""A model of the CUDA filtered_lrelu kernels' work, computed on the CPU (no GPU, no TensorFlow).

    python custom_ops/cuda_test/kernel_model.py [--resolution 256] [--batch 4] [--smem-kb 96]
    python custom_ops/cuda_test/kernel_model.py --sass custom_ops/libafgan_flrelu_cuda.so

1. Tiling: replays the host-side tiling of filtered_lrelu_kernels.cu.cc (the tile sizes it tries,
   the shared-memory cap, the regions of filtered_lrelu.h that each tile loads and computes) for
   every filtered_lrelu call of StyleGAN3-T and -R and prints, per call, forward and gradient:
   the tile, the filter taps run (multiply-adds per channel, summed over the passes of every tile)
   against the ideal, the shared memory per block and blocks per SM, and the global bytes read and
   written against the ideal. The ideal runs every pass once over the whole image (no halo
   recomputation); the gradient, like the kernels, reads dy and the 2-bit activation signs that
   the forward wrote instead of rebuilding the pre-activation from x (NVIDIA's design): forward
   x + y + the signs (as in training: a gradient follows), gradient dy + signs + dx.
2. ``--sass LIB``: reads the kernels' SASS (cuobjdump + nvdisasm, from ``pip install
   nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm``) and prints per kernel the registers, spills and
   shared memory (--dump-resource-usage) and, per innermost loop that does multiply-adds, the
   instructions per FFMA, register-indexed constant loads, shared loads and division sequences.

Counts are per element, not per warp: a warp whose lanes run different tap counts issues the
largest, so issued work is at least the figures here.
"""

import argparse
import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from layer_table import ARCHS, cuda_api, layer_cases  # noqa: E402

# The launch constants of filtered_lrelu_kernels.cu.cc.
CHANNELS_PER_BLOCK = 8      # kCh.
THREADS_PER_BLOCK = 8 * 32  # kCh x kPix.
TILES = (16, 8, 4, 2, 1)    # Square tile sizes tried, largest first.
SMEM_CAP_KB = 96            # kMaxSmemBytes.


@dataclasses.dataclass(frozen=True)
class Pass:
    """One resampling pass along an axis (AfganPass): zero-insert by up, correlate, keep every down-th."""
    up: int
    down: int
    pad: int
    taps: int
    in_len: int
    out_len: int

    def tap_counts(self):
        """Taps of each output that hit input samples (afgan_tap_range), as an int64 array."""
        o = np.arange(self.out_len, dtype=np.int64)
        base = o * self.down - self.pad
        t = np.mod(-base, self.up)
        i = (base + t) // self.up
        t = np.where(i < 0, t - i * self.up, t)
        end = np.minimum(self.taps, (self.in_len - 1) * self.up - base + 1)
        return np.maximum(0, -(-(end - t) // self.up))

    def input_span(self, o0, count):
        """(lo, len) of the inputs that outputs [o0, o0 + count) read (afgan_input_span)."""
        first = o0 * self.down - self.pad
        last = (o0 + count - 1) * self.down - self.pad + self.taps - 1
        lo = max(-(-first // self.up), 0)
        hi = min(last // self.up, self.in_len - 1)
        return lo, max(hi - lo + 1, 0)


def sizes(p):
    """(tmp_w, tmp_h, out_w, out_h) of a cuda_api.Params (filtered_lrelu.h)."""
    tmp_w = p.w * p.up + p.px0 + p.px1 - p.fu_w + 1
    tmp_h = p.h * p.up + p.py0 + p.py1 - p.fu_h + 1
    return tmp_w, tmp_h, (tmp_w - p.fd_w) // p.down + 1, (tmp_h - p.fd_h) // p.down + 1


def make_plan(p):
    """The four passes per axis (x = 0, y = 1) of the forward op and its gradient (afgan_make_plan)."""
    tmp_w, tmp_h, out_w, out_h = sizes(p)
    plan = {k: [] for k in ('fwd_up', 'fwd_down', 'bwd_down', 'bwd_up')}
    for in_len, tmp, out, pad0, fu, fd in ((p.w, tmp_w, out_w, p.px0, p.fu_w, p.fd_w),
                                           (p.h, tmp_h, out_h, p.py0, p.fu_h, p.fd_h)):
        plan['fwd_up'].append(Pass(p.up, 1, pad0, fu, in_len, tmp))
        plan['fwd_down'].append(Pass(1, p.down, 0, fd, tmp, out))
        plan['bwd_down'].append(Pass(p.down, 1, fd - 1, fd, out, tmp))
        plan['bwd_up'].append(Pass(1, p.up, fu - 1 - pad0, fu, tmp, in_len))
    return plan


class TwoPass:
    """Multiply-adds of the kernels' TwoPass (x pass then y pass, or one 2-D pass) per channel."""

    def __init__(self, passes, g2d):
        self.g2d = g2d
        self.cum = [np.concatenate([[0], np.cumsum(s.tap_counts())]) for s in passes]

    def taps(self, src_rows, out_y, out_x):
        """Taps for outputs out_y x out_x ((lo, len) spans) from a source of src_rows rows."""
        if out_y[1] <= 0 or out_x[1] <= 0:      # An empty span (inputs that no output reads) may start past the end.
            return 0
        sum_x = self.cum[0][out_x[0] + out_x[1]] - self.cum[0][out_x[0]]
        sum_y = self.cum[1][out_y[0] + out_y[1]] - self.cum[1][out_y[0]]
        return int(sum_y * sum_x) if self.g2d else int(src_rows * sum_x + sum_y * out_x[1])


def model_call(params, backward, smem_cap_kb=SMEM_CAP_KB, tiles=TILES):
    """Work of one kernel launch as tiled today: a dict of figures (see the module docstring)."""
    p = params
    plan = make_plan(p)
    tmp_w, tmp_h, out_w, out_h = sizes(p)
    up = TwoPass(plan['fwd_up'], p.fu_2d)
    down = TwoPass(plan['fwd_down'], p.fd_2d)
    bwd_down = TwoPass(plan['bwd_down'], p.fd_2d)
    bwd_up = TwoPass(plan['bwd_up'], p.fu_2d)
    rows, cols = (p.h, p.w) if backward else (out_h, out_w)
    last, dy_pass = (plan['bwd_up'], plan['bwd_down']) if backward else (plan['fwd_down'], None)

    def regions(ty, th, tx, tw):
        ry, rx = last[1].input_span(ty, th), last[0].input_span(tx, tw)
        iy, ix = plan['fwd_up'][1].input_span(*ry), plan['fwd_up'][0].input_span(*rx)
        dy = dy_pass[1].input_span(*ry) if dy_pass else (0, 0)
        dx = dy_pass[0].input_span(*rx) if dy_pass else (0, 0)
        return ry, rx, iy, ix, dy, dx

    def spans(tile, length):
        return [(s, min(tile, length - s)) for s in range(0, length, tile)]

    def tile_work(ty, th, tx, tw):
        """(taps, floats read, intermediate positions whose signs it reads) per channel of one tile. The
        gradient reads dy and the forward's signs (no up pass, no x)."""
        ry, rx, iy, ix, dy, dx = regions(ty, th, tx, tw)
        if backward:
            return bwd_down.taps(dy[1], ry, rx) + bwd_up.taps(ry[1], (ty, th), (tx, tw)), dy[1] * dx[1], ry[1] * rx[1]
        return up.taps(iy[1], ry, rx) + down.taps(ry[1], (ty, th), (tx, tw)), iy[1] * ix[1], 0

    chosen = None
    for tile in tiles:      # The launcher's choice: the largest tile whose buffers fit.
        s0 = s1 = s2 = 0
        for ty, th in spans(tile, rows):
            for tx, tw in spans(tile, cols):
                ry, rx, iy, ix, dy, dx = regions(ty, th, tx, tw)
                loaded = (0, 0) if backward else iy     # The gradient loads dy only.
                s0 = max(s0, loaded[1] * ix[1], dy[1] * dx[1])
                s1 = max(s1, loaded[1] * rx[1], dy[1] * rx[1], ry[1] * tw)
                s2 = max(s2, ry[1] * rx[1])
        smem = (s0 + s1 + s2) * CHANNELS_PER_BLOCK * 4
        if smem <= smem_cap_kb * 1024:
            chosen = tile, smem
            break
    if chosen is None:
        raise ValueError('no tile fits the shared-memory cap')
    tile, smem = chosen
    work = [tile_work(ty, th, tx, tw) for ty, th in spans(tile, rows) for tx, tw in spans(tile, cols)]
    taps, read, signs_read = (sum(w[k] for w in work) for k in range(3))
    # Ideal: each pass once over the regions that the whole image needs (one tile).
    ideal = tile_work(0, rows, 0, cols)[0]
    nc, f = p.n * p.c, 4                    # Images x channels; bytes per float.
    signs = nc * tmp_h * tmp_w / 4          # 2 bits per intermediate sample.
    word_bytes = 4 * -(-p.c // 16) / p.c    # Bytes per channel of a sign word (16 channels, rounded up).
    source, result = (out_h * out_w, p.h * p.w) if backward else (p.h * p.w, out_h * out_w)   # dy -> dx, x -> y.
    # The forward (as in training) clears the signs and writes each position once; the gradient reads the
    # signs of every tile's intermediate region.
    signs_moved = signs_read * p.n * p.c * word_bytes if backward else 2 * tmp_h * tmp_w * p.n * p.c * word_bytes
    bytes_now = (read + result) * f * nc + signs_moved
    bytes_ideal = (source + result) * f * nc + signs
    groups = -(-p.c // CHANNELS_PER_BLOCK)
    blocks = p.n * groups * (-(-rows // tile)) * (-(-cols // tile))
    return dict(tile=tile, smem=smem, blocks=blocks, taps=taps * nc, ideal_taps=ideal * nc, bytes=bytes_now,
                ideal_bytes=bytes_ideal)


def blocks_per_sm(smem_bytes, regs, smem_per_sm_kb=228, regs_per_sm=65536, threads_per_sm=2048, max_blocks=32):
    """Resident blocks per SM (H100 / H200 limits by default; 1 KB reserved per block; registers
    allocated per warp in units of 256)."""
    by_threads = threads_per_sm // THREADS_PER_BLOCK
    by_smem = (smem_per_sm_kb * 1024) // (smem_bytes + 1024)
    by_regs = regs_per_sm // (-(-regs * 32 // 256) * 256 * (THREADS_PER_BLOCK // 32)) if regs else max_blocks
    return min(by_threads, by_smem, by_regs, max_blocks)


def tiling_table(resolution, batch, smem_cap_kb, regs):
    """Prints the per-call table and the per-network sums; returns the rows."""
    rows = []
    print(f'| network | layer | pass | tile | taps / ideal | smem KB | blocks/SM | MB moved | MB ideal | bytes / ideal |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for arch in ARCHS:
        sums = {}
        for name, shape, fu, fd, kw in layer_cases(arch, resolution, batch):
            params, _, _ = cuda_api.prepare(shape, fu, fd, **kw)
            for backward in (False, True):
                m = model_call(params, backward, smem_cap_kb)
                m['blocks_per_sm'] = blocks_per_sm(m['smem'], regs[backward])
                kind = 'bwd' if backward else 'fwd'
                rows.append((arch, name, kind, m))
                s = sums.setdefault(kind, dict(taps=0, ideal_taps=0, bytes=0, ideal_bytes=0))
                for k in s:
                    s[k] += m[k]
                print(f"| {arch} | {name} | {kind} | {m['tile']} | {m['taps'] / m['ideal_taps']:.2f} | "
                      f"{m['smem'] / 1024:.1f} | {m['blocks_per_sm']} | {m['bytes'] / 2**20:.1f} | "
                      f"{m['ideal_bytes'] / 2**20:.1f} | {m['bytes'] / m['ideal_bytes']:.2f} |")
        for kind, s in sums.items():
            print(f"| {arch} | all layers | {kind} | | {s['taps'] / s['ideal_taps']:.2f} | | | "
                  f"{s['bytes'] / 2**20:.1f} | {s['ideal_bytes'] / 2**20:.1f} | {s['bytes'] / s['ideal_bytes']:.2f} |")
    return rows


# ----------------------------------------------------------------------------
# SASS evidence.

def _tool(name):
    """Path of a CUDA binary tool: PATH, the CUDA install, or the nvidia-cuda-* wheels."""
    found = shutil.which(name) or (f'/usr/local/cuda/bin/{name}' if os.path.exists(f'/usr/local/cuda/bin/{name}')
                                   else None)
    if found:
        return found
    try:
        import nvidia
        for root in nvidia.__path__:
            for path in pathlib.Path(root).glob(f'*/bin/{name}'):
                return str(path)
    except ImportError:
        pass
    raise SystemExit(f'{name} not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm')


_INSN = re.compile(r'/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);')
_FUNC = re.compile(r'Function : (\S+)')


def parse_sass(text):
    """{function name: [(address, opcode, operands)]} from cuobjdump -sass output."""
    funcs, current = {}, None
    for line in text.splitlines():
        m = _FUNC.search(line)
        if m:
            current = funcs.setdefault(m.group(1), [])
            continue
        m = _INSN.search(line)
        if m and current is not None:
            current.append((int(m.group(1), 16), m.group(3), m.group(4).strip()))
    return funcs


def inner_loops(insns):
    """Innermost loops (a backward branch whose body holds no other loop) with an FFMA: a list of
    dicts of instruction counts per loop (divisions: MUFU.RCP, the core of nvcc's integer division
    sequence, in the loop and in the loop around it)."""
    addr_index = {a: i for i, (a, _, _) in enumerate(insns)}
    loops = []
    for i, (addr, op, args) in enumerate(insns):
        if not op.startswith('BRA'):
            continue
        m = re.search(r'0x([0-9a-f]+)', args)
        target = int(m.group(1), 16) if m else None
        if target is None or target >= addr or target not in addr_index:
            continue
        loops.append((addr_index[target], i))
    found = []
    for start, end in loops:
        if any(start <= s and e <= end and (s, e) != (start, end) for s, e in loops):
            continue        # Not innermost.
        body = insns[start:end + 1]
        ops = [op for _, op, _ in body]
        ffma = sum(op.startswith('FFMA') for op in ops)
        if not ffma:
            continue
        # The smallest loop around it (the kernels' loop over output elements), less this one.
        outer = [(s, e) for s, e in loops if s <= start and end <= e and (s, e) != (start, end)]
        per_element = 0
        if outer:
            s, e = min(outer, key=lambda se: se[1] - se[0])
            per_element = sum(op.startswith('MUFU.RCP') for _, op, _ in insns[s:e + 1]) - \
                sum(op.startswith('MUFU.RCP') for op in ops)
        found.append(dict(start=insns[start][0], insns=len(body), ffma=ffma,
                          ldc_indexed=sum(op.startswith('LDC') and re.search(r'\]\s*\[\s*U?R', a) is not None
                                          for _, op, a in body),
                          lds=sum(op.startswith('LDS') for op in ops),
                          division=sum(op.startswith('MUFU.RCP') for op in ops),
                          division_per_element=per_element))
    return found


def sass_report(lib, arch='sm_90'):
    """Prints resources and the innermost multiply-add loops of each kernel in `lib`."""
    cuobjdump = _tool('cuobjdump')
    env = dict(os.environ, PATH=f"{pathlib.Path(_tool('nvdisasm')).parent}:{os.environ.get('PATH', '')}")
    usage = subprocess.run([cuobjdump, '--dump-resource-usage', '-arch', arch, lib], capture_output=True, text=True,
                           check=True, env=env).stdout
    sass = subprocess.run([cuobjdump, '-sass', '-arch', arch, lib], capture_output=True, text=True, check=True,
                          env=env).stdout
    resources = dict(re.findall(r'Function (\S+):\s*\n\s*(REG:.*)', usage))
    regs = {}
    for name, insns in parse_sass(sass).items():
        m = re.search(r'\d([A-Z]\w*?Kernel)E', name)
        short = m.group(1) if m else name
        res = resources.get(name, '') or resources.get(name + ':', '')
        m = re.search(r'REG:(\d+)', res)
        regs[short] = int(m.group(1)) if m else 0
        local = sum(op.startswith(('LDL', 'STL')) for _, op, _ in insns)
        print(f'{short} ({arch}): {res.strip()}; {len(insns)} instructions, {local} local-memory accesses, '
              f'{sum(op.startswith("MUFU.RCP") for _, op, _ in insns)} reciprocal (division) sequences')
        loops = inner_loops(insns)
        for lp in loops:
            print(f"  loop at {lp['start']:#06x}: {lp['insns']} instructions, {lp['ffma']} FFMA "
                  f"({lp['insns'] / lp['ffma']:.1f} per tap), {lp['ldc_indexed']} register-indexed LDC, "
                  f"{lp['lds']} LDS, {lp['division']} MUFU.RCP (divisions) in it, "
                  f"{lp['division_per_element']} in its enclosing loop")
        if loops:
            per_tap = [lp['insns'] / lp['ffma'] for lp in loops]
            print(f'  {len(loops)} multiply-add loops: {min(per_tap):.1f} to {max(per_tap):.1f} instructions per tap')
    return regs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--resolution', type=int, default=256)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--smem-kb', type=int, default=SMEM_CAP_KB,
                        help='Shared-memory cap per block of the tile choice (the kernel: 96).')
    parser.add_argument('--regs', default='40,50',
                        help='Registers per thread of the forward, gradient kernel (sm_90, --dump-resource-usage).')
    parser.add_argument('--sass', metavar='LIB', help='Also report the SASS of this CUDA library.')
    parser.add_argument('--arch', default='sm_90')
    args = parser.parse_args()
    regs = [int(v) for v in args.regs.split(',')]
    if args.sass:
        found = sass_report(args.sass, args.arch)
        regs = [found.get('ForwardKernel', regs[0]), found.get('BackwardKernel', regs[1])]
        print()
    tiling_table(args.resolution, args.batch, args.smem_kb, regs)


if __name__ == '__main__':
    main()
