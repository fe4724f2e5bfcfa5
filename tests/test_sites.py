"""Site names (``blocks.{L}.hook_resid_post``) and layer normalisation."""

from __future__ import annotations

import pytest

from steering.errors import LayerNotFoundError
from steering.sites import normalize_layers, parse_site, site_name


def test_site_names_round_trip():
    for layer in (0, 7, 31):
        assert parse_site(site_name(layer)) == layer
    with pytest.raises(ValueError):
        parse_site("model.layers.3")


def test_negative_layers_count_from_the_end_and_out_of_range_is_refused():
    assert normalize_layers(-1, 4) == [3]
    assert normalize_layers([0, -2], 4) == [0, 2]
    with pytest.raises(LayerNotFoundError, match="4"):
        normalize_layers([4], 4)
