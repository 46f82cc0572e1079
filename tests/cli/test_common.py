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
