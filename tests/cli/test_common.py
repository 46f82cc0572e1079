"""afgan_tf.cli.common: argument parsers."""

import pytest

from afgan_tf.cli import common


def test_parsers():
    assert common.parse_seeds('0-2,9') == [0, 1, 2, 9]
    assert common.parse_grid('4x2') == (4, 2)
    for bad in ('3-1', 'a', '-5'):
        with pytest.raises(common.UsageError):
            common.parse_seeds(bad)
    with pytest.raises(common.UsageError):
        common.parse_grid('4by2')


def test_console_scripts_start_quietly_on_a_cpu_machine(reference_dir, tmp_path):
    """No CUDA error or TensorFlow start-up line unless the user set TF_CPP_MIN_LOG_LEVEL (then they stay)."""
    import os
    import subprocess
    import sys
    from conftest import ENV
    env = {k: v for k, v in ENV.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    args = [sys.executable, '-m', 'afgan_tf.cli.generate', f'--network={pkl}', '--seeds=0', f'--outdir={tmp_path}']
    quiet = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    for noise in ('cuInit', 'cudart_stub', 'E0000', 'I0000', 'absl::InitializeLog', 'cpu_feature_guard'):
        assert noise not in quiet.stderr, quiet.stderr[-2000:]
    args[-1] = f'--outdir={tmp_path / "again"}'
    loud = subprocess.run(args, capture_output=True, text=True, env=dict(env, TF_CPP_MIN_LOG_LEVEL='0'), timeout=600)
    assert loud.returncode == 0 and ('I0000' in loud.stderr or 'W0000' in loud.stderr), loud.stderr[-500:]
