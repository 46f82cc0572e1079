"""Filter design against the reference's Kaiser sinc / radial jinc filters."""

import json

import numpy as np
import pytest

from afgan_tf import filters


def test_lowpass_filters_match_reference(reference_dir):
    cases = json.loads((reference_dir / 'lowpass_filters.json').read_text())
    assert len(cases) >= 4
    assert any(c['radial'] for c in cases) and any(not c['radial'] for c in cases)
    for case in cases:
        ours = filters.design_lowpass_filter(case['numtaps'], case['cutoff'], case['width'], case['fs'],
                                             radial=case['radial'])
        expected = np.asarray(case['filter'], dtype=np.float32)
        assert ours.shape == expected.shape, case
        assert np.max(np.abs(ours - expected)) <= 1e-6, case


def test_identity_and_properties():
    assert filters.design_lowpass_filter(1, 2.0, 1.0, 16) is None
    f = filters.design_lowpass_filter(12, 4.0, 6.0, 32)
    assert f.shape == (12,) and abs(f.sum() - 1) < 1e-5 and np.allclose(f, f[::-1])
    r = filters.design_lowpass_filter(12, 4.0, 6.0, 32, radial=True)
    assert r.shape == (12, 12) and abs(r.sum() - 1) < 1e-5 and np.allclose(r, r.T) and np.allclose(r, r[::-1])
    with pytest.raises(ValueError, match='numtaps'):
        filters.design_lowpass_filter(0, 2.0, 1.0, 16)


def test_setup_filter_normalises_and_keeps_separable():
    f = filters.setup_filter([1, 3, 3, 1])
    assert f.shape == (4,) and np.isclose(f.sum(), 1)
    f2 = filters.setup_filter([1, 3, 3, 1], separable=False, gain=4)
    assert f2.shape == (4, 4) and np.isclose(f2.sum(), 4)
