"""gouache.db engine and metadata helpers that need no database."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, String, Table, UniqueConstraint

from gouache.db import create_engine, new_metadata


@pytest.mark.parametrize(
    "url", ["sqlite:///plain.db", "postgresql://u@h/d", "mysql+aiomysql://u@h/d"]
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database driver"):
        create_engine(url)


def test_each_metadata_is_fresh_and_names_constraints() -> None:
    first, second = new_metadata(), new_metadata()
    table = Table(
        "jobs",
        first,
        Column("id", String, primary_key=True),
        Column("request_id", String),
        UniqueConstraint("request_id"),
    )

    assert first is not second
    assert table.primary_key.name == "pk_jobs"
    assert {constraint.name for constraint in table.constraints} == {
        "pk_jobs",
        "uq_jobs_request_id",
    }
