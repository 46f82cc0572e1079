"""Checks and times the CUDA filtered_lrelu kernels through their C entry points.

For a GPU machine without TensorFlow (it needs numpy, scipy, PyTorch with CUDA):

    python custom_ops/build.py --cuda-only-standalone --outdir /tmp/flrelu
    python custom_ops/cuda_test/cuda_kernel_check.py --lib /tmp/flrelu/libafgan_flrelu_cuda.so

1. Correctness: randomized cases (up 1/2/4, down 1/2, separable / 2-D / no filters,
   padding, clamp, slope, flip) and every layer configuration of StyleGAN3-T/-R at 256^2,
   forward and gradient against an unfused PyTorch reference with autograd (exits 1 on
   a mismatch above --tol relative).
2. Timing: per synthesis layer of full-size StyleGAN3-T and -R at 256^2, batch 4:
   fused kernel vs the unfused PyTorch reference, forward and forward+backward, ms per
   call (CUDA events). Prints a table; asserts nothing about speed.
3. With ``--nvlabs PATH`` (an NVlabs/stylegan3 checkout; its plugin is compiled by PyTorch at
   run time, which needs ninja and nvcc): NVIDIA's fused CUDA filtered_lrelu on the same layers
   (NCHW, its own layout), its output compared with this kernel's and timed beside it.
"""

import argparse
import pathlib
import sys

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from layer_table import ARCHS, cuda_api, layer_cases  # noqa: E402  (numpy / scipy only)


def _stream(t):
    """The current CUDA stream for a CUDA tensor; 0 for a CPU tensor (the CPU emulation build)."""
    return torch.cuda.current_stream().cuda_stream if t.is_cuda else 0


class Kernel:
    """The C entry points on PyTorch CUDA tensors (NHWC), on the current stream."""

    def __init__(self, path):
        self.api = cuda_api.CudaKernels(path)

    def forward(self, x, b, fu, fd, signs=False, **kw):
        """y, or (y, signs) with ``signs`` (the forward of a training step: it writes the signs for the gradient)."""
        p, fu, fd = cuda_api.prepare(list(x.shape), fu, fd, **kw)
        y = torch.empty(self.api.output_shape(p), device=x.device, dtype=torch.float32)
        s = torch.empty(self.api.signs_shape(p), device=x.device, dtype=torch.uint8) if signs else None
        self.api.forward(p, x.data_ptr(), b.data_ptr(), fu, fd, y.data_ptr(), None if s is None else s.data_ptr(),
                         _stream(x))
        return (y, s) if signs else y

    def backward(self, dy, signs, x_shape, fu, fd, **kw):
        """dx from dy and the forward's signs (no x)."""
        p, fu, fd = cuda_api.prepare(list(x_shape), fu, fd, **kw)
        dx = torch.empty(list(x_shape), device=dy.device, dtype=torch.float32)
        self.api.backward(p, dy.data_ptr(), signs.data_ptr(), fu, fd, dx.data_ptr(), _stream(dy))
        return dx

    def forward_backward(self, x, b, dy, fu, fd, **kw):
        """A training step's two calls: the forward with signs, then the gradient."""
        y, s = self.forward(x, b, fu, fd, signs=True, **kw)
        return y, self.backward(dy, s, x.shape, fu, fd, **kw)


# ----------------------------------------------------------------------------
# Unfused PyTorch reference (NHWC in/out), same semantics as afgan_tf.ops.

def _upfirdn(x, f, up, down, pad, gain):
    """x NCHW; f numpy [k] or [kh, kw] or None; pad [x0, x1, y0, y1]; true convolution."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = torch.nn.functional.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = torch.nn.functional.pad(x, [max(pad[0], 0), max(pad[1], 0), max(pad[2], 0), max(pad[3], 0)])
    x = x[:, :, max(-pad[2], 0): x.shape[2] - max(-pad[3], 0), max(-pad[0], 0): x.shape[3] - max(-pad[1], 0)]
    if f is not None:
        f = torch.as_tensor(np.flip(f, axis=tuple(range(f.ndim))).copy(), device=x.device)
        f = f * (gain ** (f.ndim / 2))
        if f.ndim == 2:
            x = torch.nn.functional.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
        else:
            x = torch.nn.functional.conv2d(x, f[None, None, None, :].repeat(c, 1, 1, 1), groups=c)
            x = torch.nn.functional.conv2d(x, f[None, None, :, None].repeat(c, 1, 1, 1), groups=c)
    elif gain != 1:
        x = x * gain
    return x[:, :, ::down, ::down]


def reference(x, b, fu, fd, up, down, padding, gain, slope, clamp, flip):
    if flip:       # Correlation = convolution with the flipped filter.
        fu = None if fu is None else np.flip(fu, axis=tuple(range(fu.ndim))).copy()
        fd = None if fd is None else np.flip(fd, axis=tuple(range(fd.ndim))).copy()
    x = (x + b).permute(0, 3, 1, 2)
    x = _upfirdn(x, fu, up, 1, padding, up ** 2)
    x = torch.where(x >= 0, x, x * slope) * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    x = _upfirdn(x, fd, 1, down, [0, 0, 0, 0], 1)
    return x.permute(0, 2, 3, 1)


# ----------------------------------------------------------------------------

def compare(kernel, shape, fu, fd, kw, gen, scale=1.0):
    x = (torch.randn(shape, device='cuda', generator=gen) * scale).requires_grad_(True)
    b = torch.randn(shape[-1], device='cuda', generator=gen).requires_grad_(True)
    y_ref = reference(x, b, fu, fd, **kw)
    dy = torch.randn(y_ref.shape, device='cuda', generator=gen)
    dx_ref, = torch.autograd.grad(y_ref, [x], dy)
    y_only = kernel.forward(x.detach(), b.detach(), fu, fd, **kw)
    y, dx = kernel.forward_backward(x.detach(), b.detach(), dy, fu, fd, **kw)
    torch.cuda.synchronize()
    if not torch.equal(y, y_only):
        return float('inf'), float('inf')     # Writing the signs must not change y.
    rel = lambda a, r: float((a - r).abs().max() / r.abs().max().clamp_min(1e-12))
    return rel(y, y_ref.detach()), rel(dx, dx_ref)


class NvidiaOp:
    """NVIDIA's torch_utils.ops.filtered_lrelu (impl='cuda') on NHWC tensors, for comparison."""

    def __init__(self, path):
        import torch.utils.cpp_extension as cpp_extension
        sys.path.insert(0, str(path))
        # NVIDIA's loader imports the built plugin by name, which recent PyTorch no longer puts on
        # sys.path: register the module that cpp_extension.load returns.
        load = cpp_extension.load

        def load_and_register(*args, **kwargs):
            module = load(*args, **kwargs)
            sys.modules[kwargs.get('name') or args[0]] = module
            return module
        cpp_extension.load = load_and_register
        from torch_utils.ops import filtered_lrelu
        self.op = filtered_lrelu

    @staticmethod
    def _filter(f):
        return None if f is None else torch.as_tensor(np.asarray(f, np.float32), device='cuda')

    def __call__(self, x_nchw, b, fu, fd, up, down, padding, gain, slope, clamp, flip):
        return self.op.filtered_lrelu(x_nchw, self._filter(fu), self._filter(fd), b, up=up, down=down,
                                      padding=list(padding), gain=gain, slope=slope, clamp=clamp, flip_filter=flip,
                                      impl='cuda')


def time_ms(fn, repeats=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lib', default=str(HERE.parent / 'libafgan_flrelu_cuda.so'))
    parser.add_argument('--cases', type=int, default=200, help='Randomized correctness cases.')
    parser.add_argument('--tol', type=float, default=1e-4, help='Maximum relative error.')
    parser.add_argument('--no-timing', action='store_true')
    parser.add_argument('--nvlabs', help="NVlabs/stylegan3 checkout: also check and time NVIDIA's fused kernel.")
    args = parser.parse_args()
    kernel = Kernel(args.lib)
    nvidia = NvidiaOp(args.nvlabs) if args.nvlabs else None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    gen = torch.Generator(device='cuda').manual_seed(0)
    rng = np.random.default_rng(0)
    worst, failures = 0.0, 0
    for i in range(args.cases):
        shape, fu, fd, kw = cuda_api.random_case(rng, max_size=24, max_channels=19)
        errs = compare(kernel, shape, fu, fd, kw, gen)
        worst = max(worst, *errs)
        if max(errs) > args.tol:
            failures += 1
            print(f'MISMATCH case {i}: shape {shape} {kw} fu {None if fu is None else fu.shape} '
                  f'fd {None if fd is None else fd.shape}: rel err y {errs[0]:.2e} dx {errs[1]:.2e}')
    print(f'random cases: {args.cases}, failures: {failures}, worst relative error {worst:.2e}')
    rows = []
    for arch in ARCHS:
        for name, shape, fu, fd, kw in layer_cases(arch):
            errs = compare(kernel, shape, fu, fd, kw, gen, scale=10.0)
            if max(errs) > args.tol:
                failures += 1
                print(f'MISMATCH {arch} {name}: rel err y {errs[0]:.2e} dx {errs[1]:.2e}')
            if args.no_timing:
                continue
            x = torch.randn(shape, device='cuda', generator=gen) * 10
            b = torch.randn(shape[-1], device='cuda', generator=gen)
            xr, br = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
            y = kernel.forward(x, b, fu, fd, **kw)
            dy = torch.randn_like(y)
            t_fwd = time_ms(lambda: kernel.forward(x, b, fu, fd, **kw))
            t_both = time_ms(lambda: kernel.forward_backward(x, b, dy, fu, fd, **kw))
            r_fwd = time_ms(lambda: reference(xr.detach(), br.detach(), fu, fd, **kw))
            r_both = time_ms(lambda: torch.autograd.grad(reference(xr, br, fu, fd, **kw), [xr, br], dy))
            row = [arch, name, t_fwd, r_fwd, t_both, r_both]
            if nvidia is not None:
                xn = x.permute(0, 3, 1, 2).contiguous()
                y_nv = nvidia(xn, b, fu, fd, **kw).permute(0, 2, 3, 1)
                err = float((y_nv - y).abs().max() / y.abs().max().clamp_min(1e-12))
                if err > args.tol:
                    failures += 1
                    print(f'MISMATCH with NVIDIA {arch} {name}: rel err y {err:.2e}')
                xg = xn.clone().requires_grad_(True)
                dyn = dy.permute(0, 3, 1, 2).contiguous()
                row += [time_ms(lambda: nvidia(xn, b, fu, fd, **kw)),
                        time_ms(lambda: torch.autograd.grad(nvidia(xg, b, fu, fd, **kw), [xg], dyn))]
            rows.append(tuple(row))
    if rows:
        nv = ' NVIDIA fwd ms | NVIDIA fwd+bwd ms |' if nvidia is not None else ''
        print('\n| network | layer | fused fwd ms | torch ref fwd ms | fused fwd+bwd ms | torch ref fwd+bwd ms |' + nv)
        print('|---|---|---|---|---|---|' + ('---|---|' if nv else ''))
        for arch, name, *t in rows:
            print(f'| {arch} | {name} | ' + ' | '.join(f'{v:.3f}' for v in t) + ' |')
        for arch in ARCHS:
            tot = np.sum([r[2:] for r in rows if r[0] == arch], axis=0)
            print(f'| {arch} | total | ' + ' | '.join(f'{v:.3f}' for v in tot) +
                  f' |  vs torch ref: fwd x{tot[1] / tot[0]:.2f}, fwd+bwd x{tot[3] / tot[2]:.2f}' +
                  (f'; vs NVIDIA: fwd x{tot[4] / tot[0]:.2f}, fwd+bwd x{tot[5] / tot[2]:.2f}' if nv else ''))
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
