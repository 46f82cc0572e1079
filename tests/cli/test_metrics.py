"""afgan-metrics: the CLI end to end, and its exit codes."""

import json
import os
import subprocess
import sys

from conftest import ENV, tool


def test_metrics_cli_exits_2_only_for_input_errors(reference_dir, tmp_path):
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    bug = ('import sys\n'
           'from afgan_tf.metrics import metric_main\n'
           'def compute(spec, ctx): raise ValueError("an internal bug")\n'
           'metric_main.compute = compute\n'
           'from afgan_tf.cli import metrics\n'
           f'sys.argv = ["afgan-metrics", "--network={pkl}", "--metrics=eqt50k_int", "--num=4"]\n'
           'metrics.run()\n')
    r = subprocess.run([sys.executable, '-c', bug], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 1 and 'Traceback' in r.stderr and 'an internal bug' in r.stderr
    r = tool('metrics', f'--network={pkl}', '--metrics=fid50k_full', f'--data={tmp_path}')
    assert r.returncode == 2 and 'error: fid50k_full: data:' in r.stderr and 'Traceback' not in r.stderr


def test_metrics_cli(fid_inception, reference_dir, tiny_dataset, tmp_path):
    del fid_inception       # Makes sure the converted weights are in the cache before the subprocess runs.
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    r = tool('metrics', f'--network={pkl}', '--metrics=fid50k_full,eqt50k_int', f'--data={tiny_dataset}',
             '--num=8', '--batch=8', '--nocache', f'--report-dir={tmp_path}')
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{')]
    assert [x['metric'] for x in lines] == ['fid50k_full', 'eqt50k_int']
    assert all(x['num_samples'] == 8 and x['seconds'] > 0 for x in lines)
    assert sorted(os.listdir(tmp_path)) == ['metric-eqt50k_int.jsonl', 'metric-fid50k_full.jsonl']
    r = tool('metrics', f'--network={pkl}', '--metrics=fid50k_full')
    assert r.returncode == 2 and '--data is required by fid50k_full' in r.stderr
    r = tool('metrics', f'--network={pkl}', '--metrics=foo')
    assert r.returncode == 2 and "unknown metric 'foo'" in r.stderr
