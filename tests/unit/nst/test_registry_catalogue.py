"""The registry's specs are the catalogue's entries, field for field."""

from __future__ import annotations

import pytest

from gouache import catalogue
from gouache.catalogue import CatalogueEntry
from gouache.nst import registry
from gouache.nst.registry import GATYS_VGG19_V1, ModelSpec, spec_of


def _same(spec: ModelSpec, entry: CatalogueEntry) -> None:
    assert (spec.name, spec.family, spec.encoder) == (entry.name, entry.family, entry.encoder)
    assert (spec.tile_size, spec.description) == (entry.tile_size, entry.description)
    assert dict(spec.config) == dict(entry.config)
    assert {
        role: (w.package, w.path_in_package, w.sha256, w.description)
        for role, w in spec.weights.items()
    } == {
        role: (w.package, w.path_in_package, w.sha256, w.description)
        for role, w in entry.weights.items()
    }


@pytest.mark.parametrize("entry", catalogue.entries(), ids=lambda entry: entry.name)
def test_every_shipped_entry_is_registered_as_it_is_catalogued(entry: CatalogueEntry) -> None:
    spec = registry.get(entry.name)
    _same(spec, entry)
    registry.family(spec.family).check(spec)


def test_the_registry_holds_the_shipped_entries_and_the_vgg19_spec_its_entry() -> None:
    registered = {spec.name for spec in registry.all_models()}
    assert set(catalogue.names()) <= registered <= set(catalogue.names(operator_supplied=True))
    vgg19 = catalogue.get(GATYS_VGG19_V1.name)
    assert vgg19.operator_supplied
    _same(GATYS_VGG19_V1, vgg19)
    assert spec_of(vgg19) == GATYS_VGG19_V1
    assert registry.DEFAULT == catalogue.DEFAULT
