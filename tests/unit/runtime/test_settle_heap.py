"""settle_heap: what a started service keeps is frozen, and young collections are rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gouache.runtime import server


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    _, middle, old = gc.get_threshold()
    server.settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (server.GC_YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restore_gc")
def test_cycles_made_later_are_still_collected() -> None:
    server.settle_heap()

    class Node:
        partner: object

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    del first, second
    # Frozen objects are skipped; new garbage is not.
    assert gc.collect() >= 2
