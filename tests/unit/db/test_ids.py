"""new_id: format, uniqueness, creation-order sorting, and the timestamp it carries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from gouache.db import ids
from gouache.db.ids import id_timestamp, new_id

ID_PATTERN = re.compile(r"job_[0-9A-HJKMNP-TV-Z]{26}")


def test_format_is_prefix_and_26_crockford_characters() -> None:
    value = new_id("job")

    assert ID_PATTERN.fullmatch(value), value
    assert value[4] in "01234567"  # 128 bits in 130: the first character holds 3 bits


def test_ids_are_unique_and_sort_in_creation_order() -> None:
    made = [new_id("job") for _ in range(20_000)]  # many share a millisecond

    assert len(set(made)) == len(made)
    assert sorted(made) == made


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ns = 1_700_000_000_000_000_000
    monkeypatch.setattr(ids, "_SOURCE", ids._MonotonicSource())  # keep the real one untouched
    monkeypatch.setattr(ids.time, "time_ns", lambda: now_ns)
    first = new_id("evt")
    now_ns -= 5_000_000_000
    second = new_id("evt")

    assert second > first


def test_timestamp_is_the_creation_millisecond() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    stamp = id_timestamp(new_id("img"))
    after = datetime.now(UTC) + timedelta(milliseconds=1)

    assert before <= stamp <= after


@pytest.mark.parametrize("prefix", ["", "Job", "1job", "job_x", "a" * 17])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)


@pytest.mark.parametrize("value", ["job_", "job_0123", "job_" + "I" * 26])
def test_timestamp_refuses_what_new_id_did_not_make(value: str) -> None:
    with pytest.raises(ValueError, match="not an id"):
        id_timestamp(value)
