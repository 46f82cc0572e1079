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


def test_hostile_weight_files_are_input_errors(reference_dir, tmp_path):
    """A corrupt deflate stream in --vgg16, a truncated --lpips wheel and a FIFO give 'error: ...' and exit 2."""
    import io
    import zipfile

    import numpy as np
    from conftest import write_torch_state_dict
    pkl = reference_dir / 'stylegan3-t_32' / 'network-snapshot.pkl'
    raw = write_torch_state_dict(tmp_path / 'v.pth', {'w': np.ones(4096, np.float32)}).read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, 'w', compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    data = bytearray(out.getvalue())
    at = data.index(b'data/0') + 8
    data[at:at + 16] = b'\xff' * 16
    (tmp_path / 'deflate.pth').write_bytes(bytes(data))
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, 'w') as z:
        z.writestr('lpips/weights/v0.1/vgg.pth', raw)
    (tmp_path / 'lpips-0.1.4-py3-none-any.whl').write_bytes(wheel.getvalue()[:len(wheel.getvalue()) // 2])  # Cut.
    os.mkfifo(tmp_path / 'fifo.pth')
    from conftest import random_vgg16_state_dict
    vgg = write_torch_state_dict(tmp_path / 'vgg16.pth', random_vgg16_state_dict()[0])
    for flags, message in (([f'--vgg16={tmp_path / "deflate.pth"}'], 'not a readable torch.save file'),
                           ([f'--vgg16={vgg}', f'--lpips={tmp_path / "lpips-0.1.4-py3-none-any.whl"}'],
                            'not a readable wheel'),
                           ([f'--vgg16={tmp_path / "fifo.pth"}'], 'not a regular file')):
        r = tool('metrics', f'--network={pkl}', '--metrics=ppl2_wend', '--num=2', *flags, timeout=300)
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, (flags, r.stderr[-1500:])
