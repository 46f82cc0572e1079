"""Closed-form latent directions (SeFa: Shen & Zhou, "Closed-Form Factorization of Latent Semantics in
GANs", CVPR 2021) for StyleGAN2 and StyleGAN3.

A w enters the synthesis network only through the style affines ``s = A w + b`` of its layers. The
directions d (unit norm) that move the styles most, ``max ||A d||``, are the eigenvectors of AᵀA with the
largest eigenvalues, where A stacks the chosen layers' affine weights (each output unit's weight vector
normalised to unit length, as SeFa does, so that wide layers do not dominate). No data, no training.

    dirs = directions.sefa(G, layers=(0, 3), num=8)     # ws indices 0..3: the coarse layers
    ws = directions.apply(ws, dirs['directions'][0], dirs['layers'], strength=3.0)

``save`` / ``load`` use an ``.npz`` (``directions`` [K, w_dim], ``eigenvalues`` [K], ``layers`` (ws
indices), ``layer_names`` (NVIDIA's names of the affines used), ``w_dim``, ``num_ws``).
"""

import numpy as np


def style_matrix(G, layers=None):
    """(A [sum of out units, w_dim], ws indices, layer names) of the affines whose ws index is in ``layers``
    ((first, last), inclusive; None = all)."""
    chosen = [(name, index, affine) for name, index, affine in G.synthesis.style_layers()
              if layers is None or layers[0] <= index <= layers[1]]
    if not chosen:
        raise ValueError(f'layers: no style layer has a ws index in {layers} (the network has ws 0..{G.num_ws - 1})')
    A = np.concatenate([np.asarray(affine.weight.numpy(), np.float64) for _, _, affine in chosen])
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    return A, sorted({index for _, index, _ in chosen}), [name for name, _, _ in chosen]


def sefa(G, layers=None, num=10):
    """The top ``num`` eigenvectors of AᵀA (see the module docstring) as unit directions in W, largest first."""
    A, indices, names = style_matrix(G, layers)
    if not 1 <= int(num) <= G.w_dim:
        raise ValueError(f'num must be in [1, {G.w_dim}], got {num}')
    values, vectors = np.linalg.eigh(A.T @ A)               # Ascending; symmetric, so eigh.
    order = np.argsort(values)[::-1][:int(num)]
    return {'directions': vectors[:, order].T.astype(np.float32), 'eigenvalues': values[order].astype(np.float32),
            'layers': np.asarray(indices, np.int64), 'layer_names': np.asarray(names), 'w_dim': np.int64(G.w_dim),
            'num_ws': np.int64(G.num_ws)}


def apply(ws, direction, layers, strength):
    """ws [N, num_ws, w_dim] moved by ``strength * direction`` at the ws indices ``layers``."""
    ws = np.array(ws, np.float32, copy=True)
    ws[:, np.asarray(layers, np.int64)] += np.float32(strength) * np.asarray(direction, np.float32)
    return ws


def save(path, dirs):
    np.savez(path, **dirs)
    return path


def load(path, G=None):
    """The directions of ``path``; with ``G``, checked against its w_dim and num_ws. ValueError if unusable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            dirs = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f'{path}: not a directions .npz ({e})') from None
    missing = [k for k in ('directions', 'layers', 'w_dim', 'num_ws') if k not in dirs]
    if missing:
        raise ValueError(f'{path}: not a directions file of afgan-directions (missing {missing})')
    d = dirs['directions']
    if d.ndim != 2 or d.shape[1] != int(dirs['w_dim']) or not np.all(np.isfinite(d)):
        raise ValueError(f'{path}: directions must be finite [K, w_dim], got {list(d.shape)}')
    if G is not None and (int(dirs['w_dim']) != G.w_dim or int(dirs['num_ws']) != G.num_ws or
                          np.any(dirs['layers'] < 0) or np.any(dirs['layers'] >= G.num_ws)):
        raise ValueError(f'{path}: made for w_dim {int(dirs["w_dim"])} and {int(dirs["num_ws"])} ws, the network has '
                         f'{G.w_dim} and {G.num_ws}')
    return dirs
