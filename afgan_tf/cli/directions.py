"""afgan-directions: closed-form latent directions of a generator (SeFa), for StyleGAN2 and StyleGAN3.

    afgan-directions --network models/ffhq --out dirs.npz [--layers 0-3] [--num 10]
    afgan-generate --network models/ffhq --seeds 0-7 --direction dirs.npz:0 --strength 3 --outdir out/

The top --num eigenvectors of AᵀA, A the style affine weights of the layers whose ws index is in --layers
(default: all), as unit directions in W (afgan_tf.directions). Prints the layers used (NVIDIA's names) and
the eigenvalues.
"""

import re

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory, training run, or NVIDIA .pkl (path or URL).')
flags.DEFINE_string('out', None, 'Output .npz.')
flags.DEFINE_string('layers', None, 'ws indices A-B (inclusive) whose style layers to factorise; default all.')
flags.DEFINE_integer('num', 10, 'Number of directions.')
flags.DEFINE_bool('force', False, 'Overwrite --out.')
flags.mark_flags_as_required(['network', 'out'])


def parse_layers(text, num_ws):
    """'A-B' -> (A, B) within [0, num_ws)."""
    m = re.fullmatch(r'\s*(\d+)\s*-\s*(\d+)\s*', str(text)) or re.fullmatch(r'\s*(\d+)\s*', str(text))
    if not m:
        raise common.UsageError(f'--layers must be A-B (ws indices), got {text!r}')
    lo, hi = int(m.group(1)), int(m.groups()[-1])
    if not 0 <= lo <= hi < num_ws:
        raise common.UsageError(f'--layers {text}: ws indices must satisfy 0 <= A <= B < {num_ws}')
    return lo, hi


def main(argv):
    del argv
    from afgan_tf import directions
    common.refuse_existing(FLAGS.out, FLAGS.force)
    G = common.load_generator(FLAGS.network)
    layers = parse_layers(FLAGS.layers, G.num_ws) if FLAGS.layers else None
    if not 1 <= FLAGS.num <= G.w_dim:
        raise common.UsageError(f'--num must be in [1, {G.w_dim}], got {FLAGS.num}')
    try:
        dirs = directions.sefa(G, layers, FLAGS.num)
    except ValueError as e:
        raise common.UsageError(str(e)) from None
    with open(FLAGS.out, 'wb') as f:
        directions.save(f, dirs)
    print(f'{FLAGS.num} directions of ws {list(dirs["layers"])} ({len(dirs["layer_names"])} style layers: '
          f'{", ".join(dirs["layer_names"][:4])}{" ..." if len(dirs["layer_names"]) > 4 else ""}) -> {FLAGS.out}')
    print('eigenvalues: ' + ', '.join(f'{v:.2f}' for v in dirs['eigenvalues']))


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
