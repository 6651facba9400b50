"""The shipped feedforward version paints every curated style the package ships."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from gouache import catalogue
from gouache.nst import registry
from gouache.nst.families.feedforward import FeedforwardFamily

FEEDFORWARD = "feedforward.lite0-v1"


@pytest.fixture(scope="module")
def shipped() -> FeedforwardFamily:
    family = registry.build_family(FEEDFORWARD)
    assert isinstance(family, FeedforwardFamily)
    return family


def test_the_catalogue_reads_the_trained_styles_the_engine_loads(
    shipped: FeedforwardFamily,
) -> None:
    ours = [(s.slot, s.title, s.file, s.sha256) for s in catalogue.trained_styles(FEEDFORWARD)]
    engine = [(s.slot, s.title, s.file, s.sha256) for s in shipped.trained_styles]
    assert ours == engine


@pytest.mark.parametrize("style", catalogue.curated_styles(), ids=lambda style: style.file)
def test_each_shipped_copy_is_identified_as_the_style_it_was_made_from(
    shipped: FeedforwardFamily, style: catalogue.CuratedStyle
) -> None:
    path = catalogue.curated_directory() / style.file
    data = path.read_bytes()
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
    trained = {s.sha256: s.slot for s in shipped.trained_styles}
    # The key tiling sends: the stored file's sha256 at a tile size.
    key = f"{hashlib.sha256(data).hexdigest()}@512"
    assert (
        shipped.index.identify(image, key, field="styles[0]").slot == trained[style.source_sha256]
    )
    distances = shipped.index.distances(image)
    nearest = min(distances, key=lambda slot: distances[slot])
    assert nearest == trained[style.source_sha256]
    assert distances[nearest] <= shipped.model.identify.max_distance
