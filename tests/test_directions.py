"""afgan_tf.directions and afgan-directions: SeFa's closed-form directions, for StyleGAN2 and StyleGAN3."""

import numpy as np
import pytest

from afgan_tf import directions, networks

from conftest import tool


def _affine_weights(G, prefix_filter):
    return [v.numpy() for k, v in G.reference_variables().items() if k.endswith('.affine.weight') and prefix_filter(k)]


@pytest.mark.parametrize('arch', ['stylegan3-t', 'stylegan2'])
def test_sefa_is_the_eigendecomposition_of_the_stacked_style_weights(arch):
    G = networks.Generator(arch, seed=0, z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=256,
                           channel_max=16)
    dirs = directions.sefa(G, num=5)
    names = [name for name, _, _ in G.synthesis.style_layers()]
    assert list(dirs['layer_names']) == names and 'synthesis.input' not in names      # NVIDIA's names.
    A = np.concatenate([v.numpy() for k, v in G.reference_variables().items()
                        if k.endswith('.affine.weight') and k[:-len('.affine.weight')] in names]).astype(np.float64)
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eig(A.T @ A)                  # numpy's general solver, sorted here.
    order = np.argsort(values.real)[::-1][:5]
    assert np.allclose(dirs['eigenvalues'], values.real[order], rtol=1e-4)
    for d, v in zip(dirs['directions'], vectors.real[:, order].T):
        assert abs(float(np.dot(d, v))) == pytest.approx(1, abs=1e-4)        # The same axis (up to sign).
    assert np.allclose(np.linalg.norm(dirs['directions'], axis=1), 1, atol=1e-5)
    coarse = directions.sefa(G, layers=(1, 2), num=2)
    assert list(coarse['layers']) == [1, 2] and len(coarse['layer_names']) < len(names)
    with pytest.raises(ValueError, match='no style layer'):
        directions.sefa(G, layers=(99, 100))


def test_the_top_direction_moves_the_image_more_than_a_random_one(load_reference_network):
    G = load_reference_network('stylegan3-t_32').G
    dirs = directions.sefa(G, num=1)
    rng = np.random.default_rng(0)
    ws = G.mapping(rng.standard_normal([4, G.z_dim]).astype(np.float32)).numpy()
    base = G.synthesis(ws, impl='ref').numpy()

    def change(d):
        return float(np.mean(np.abs(G.synthesis(directions.apply(ws, d, dirs['layers'], 3.0), impl='ref').numpy()
                                    - base)))
    top = change(dirs['directions'][0])
    randoms = [change(r / np.linalg.norm(r)) for r in rng.standard_normal([4, G.w_dim])]
    assert top > max(randoms), (top, randoms)


def test_directions_cli_and_generate_direction(reference_dir, tmp_path):
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    out = tmp_path / 'dirs.npz'
    r = tool('directions', f'--network={pkl}', f'--out={out}', '--layers=0-4', '--num=3')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'synthesis.L0_' in r.stdout and 'eigenvalues' in r.stdout
    dirs = directions.load(out)
    # ws 0 feeds StyleGAN3's input transform, not a style: the layers used are ws 1-4.
    assert dirs['directions'].shape[0] == 3 and list(dirs['layers']) == [1, 2, 3, 4]
    images = {}
    for strength in ('0', '4'):
        r = tool('generate', f'--network={pkl}', '--seeds=0', f'--direction={out}:0', f'--strength={strength}',
                 f'--outdir={tmp_path / strength}')
        assert r.returncode == 0, r.stderr[-2000:]
        from PIL import Image
        images[strength] = np.asarray(Image.open(tmp_path / strength / 'seed0000.png'), np.float32)
    assert np.mean(np.abs(images['4'] - images['0'])) > 1
    for flag, message in ((f'--direction={out}:9', 'has 3 directions'), (f'--direction={out}', 'FILE.npz:K'),
                          (f'--direction={tmp_path / "none.npz"}:0', 'not a directions .npz')):
        r = tool('generate', f'--network={pkl}', '--seeds=0', flag, f'--outdir={tmp_path / "x"}')
        assert r.returncode == 2 and message in r.stderr, (flag, r.stderr[-800:])
    r = tool('directions', f'--network={pkl}', f'--out={tmp_path / "o.npz"}', '--layers=3-99')
    assert r.returncode == 2 and 'ws indices must satisfy' in r.stderr
