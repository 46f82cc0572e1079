"""afgan-explore: an interactive generator explorer in the browser, local or through TF Serving.

    afgan-explore --network NET [--port 8080]
    afgan-explore --serving-url http://host:8501/v1/models/NAME [--port 8080]

Serves one page (plain HTML + JavaScript, works offline) at http://HOST:PORT/: seed, truncation,
translate / rotate (StyleGAN3), style mixing of two seeds from a chosen layer, a looping W
interpolation between seeds, PNG download and a latency read-out. The page speaks TF Serving's
REST API; with --network this server answers it with the network loaded here (the same signatures
as afgan-export writes), with --serving-url it forwards the page's requests to that TF Serving.
With --directions (afgan-directions), sliders move the image along latent directions, applied in W
by the page (mapping + synthesis: also through TF Serving). With --network, an upload box projects
an image into W+ (--project-steps, progress on the page; local only: TF Serving computes no
gradients), then the same sliders edit it.
"""

import os

from absl import app, flags

from afgan_tf.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string('network', None, 'Network: project directory, training run, or NVIDIA .pkl (path or URL).')
flags.DEFINE_string('serving-url', None, 'Instead of --network: a TF Serving model, http://host:8501/v1/models/NAME.')
flags.DEFINE_enum('which', 'G_ema', ['G_ema', 'G'], 'Which generator of --network.')
flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (0.0.0.0: every interface).')
flags.DEFINE_integer('port', 8080, 'Port to listen on (0: any free port).')
flags.DEFINE_multi_string('allow-host', [], 'A host name this server is reached by, besides localhost and IP '
                          'addresses (requests whose Host header names anything else are refused: DNS rebinding).')
flags.DEFINE_string('directions', None, 'Latent directions (.npz of afgan-directions): sliders that edit the image in W.')
flags.DEFINE_integer('project-steps', 100, 'Steps of the projection of an uploaded image (--network only).')
flags.DEFINE_string('vgg16', None, 'VGG16 weights for the projection\'s distance (default: the FID Inception\'s).')
flags.DEFINE_bool('verbose', False, 'Log every request.')


def main(argv):
    del argv
    from afgan_tf.export import explore
    if bool(FLAGS.network) == bool(FLAGS['serving-url'].value):
        raise common.UsageError('give exactly one of --network and --serving-url')
    if not 0 <= FLAGS.port <= 65535:
        raise common.UsageError(f'--port must be in [0, 65535], got {FLAGS.port}')
    if not 1 <= FLAGS['project-steps'].value <= explore.MAX_PROJECT_STEPS:
        raise common.UsageError(f'--project-steps must be in [1, {explore.MAX_PROJECT_STEPS}]')
    if FLAGS.network:
        G = common.load_generator(FLAGS.network, FLAGS.which)
        distance = None
        if FLAGS.vgg16:
            from afgan_tf import projector
            try:
                distance = projector.Vgg16Distance(FLAGS.vgg16)
            except (FileNotFoundError, ValueError) as e:
                raise common.UsageError(f'--vgg16: {e}') from None
        backend = explore.LocalBackend(G, distance=distance, project_steps=FLAGS['project-steps'].value)
        source = f'{FLAGS.network} (loaded here)'
    else:
        try:
            backend = explore.ServingBackend(FLAGS['serving-url'].value)
            backend.metadata()
        except (ValueError, ConnectionError) as e:      # A malformed URL, TF Serving unreachable or refusing.
            raise common.UsageError(f'--serving-url: {e}') from e
        source = f'TF Serving at {backend.url}'
    dirs = None
    if FLAGS.directions:
        from afgan_tf import directions
        try:
            dirs = directions.load(FLAGS.directions, G if FLAGS.network else None)
        except ValueError as e:
            raise common.UsageError(f'--directions: {e}') from None
    try:
        server = explore.make_server(backend, FLAGS.host, FLAGS.port, log=print if FLAGS.verbose else None,
                                     allowed_hosts=FLAGS['allow-host'].value, directions=dirs)
    except OSError as e:
        raise common.UsageError(f'cannot listen on {FLAGS.host}:{FLAGS.port}: {e}') from e
    host = 'localhost' if FLAGS.host in ('127.0.0.1', '0.0.0.0') else FLAGS.host
    print(f'afgan-explore: {source}; open http://{host}:{server.server_port}/ (Ctrl-C to stop)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def run():
    app.run(common.run_main(main))


if __name__ == '__main__':
    run()
