"""The usage CSV: RFC 4180 quoting, CRLF line ends, exact decimals."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from services.feedback.usage import UsageRecord
from services.feedback.usage_csv import COLUMNS, seconds, usage_csv

AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_seconds_are_exact_milliseconds() -> None:
    assert [seconds(ms) for ms in (0, 7, 1000, 1001, 123_456_789)] == [
        "0.000",
        "0.007",
        "1.000",
        "1.001",
        "123456.789",
    ]


def test_an_empty_export_is_the_header_alone() -> None:
    assert usage_csv([]) == (",".join(COLUMNS) + "\r\n").encode()


def test_fields_with_commas_quotes_or_line_breaks_are_quoted() -> None:
    record = UsageRecord(
        'usr "q", x', "v\n1", 1, 0, 0, AT, compute_ms=2500, period="2030-01", project_id="prj_1"
    )
    document = usage_csv([record]).decode()
    assert document.splitlines()[1].startswith('2030-01,prj_1,"usr ""q"", x","v')
    (row,) = list(csv.reader(io.StringIO(document, newline="")))[1:]
    assert row[1:4] == ["prj_1", 'usr "q", x', "v\n1"]
    assert row[8] == "2.500"
    assert row[-1] == "2030-01-02T03:04:05.000000Z"
