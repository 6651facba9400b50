"""The families' shared style cache: bounded, least recently used first out, thread-safe."""

from __future__ import annotations

import threading

import pytest

from gouache.lru import LruCache


def test_a_hit_keeps_an_entry_and_the_oldest_goes_first() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the newest
    cache.put("c", 3)

    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_putting_a_key_again_replaces_it_and_makes_it_newest() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), len(cache)) == (10, None, 2)


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LruCache(0)


def test_threads_never_push_it_past_capacity() -> None:
    cache: LruCache[int, int] = LruCache(8)

    def fill(offset: int) -> None:
        for i in range(500):
            cache.put(offset + i, i)
            cache.get(offset + i // 2)

    threads = [threading.Thread(target=fill, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(cache) == 8
