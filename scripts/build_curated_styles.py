"""Makes the curated styles that ship in the package from the shared corpus.

    .venv/bin/python scripts/build_curated_styles.py [--data ../shared/data] [--worldwide-only]

Which styles: the ones the shipped feedforward version was trained on, read from its
manifest through the model catalogue (so feedforward paints every shipped style). Each
is checked against the corpus (the file's sha256 must be the one trained on; its rights
category must be "public domain"), made at most 512 px on the longer side and encoded as
a baseline JPEG at quality 85 (copied unchanged when it already is a JPEG that small),
and written to libs/gouache/catalogue/styles/ with a manifest.json in the corpus's format
(title, artist, year, rights, source, the shipped file's sha256 and the one it was made
from). Where the work is in the public domain is worked out from the artist's death and
publication years in the corpus's rights note, as of today; `--worldwide-only` leaves out
the works still protected somewhere. Reruns give the same bytes (Pillow pinned).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from gouache.catalogue import curated, get

CHECKOUT = Path(__file__).resolve().parents[1]
OUT = CHECKOUT / "libs" / "gouache" / "catalogue" / curated.CURATED_DIRECTORY
FEEDFORWARD = "feedforward.lite0-v1"
MAX_SIDE = 512
QUALITY = 85
COPY_BELOW_BYTES = 64 * 1024
# The US: works published before 1 January (this year - 95) are in the public domain.
US_TERM_YEARS = 95
# Terms of protection after the author's death, and where they run (the longest is
# Mexico's); a work is public domain in a place from 1 January after its term ends.
TERMS = (
    (70, "life+70 countries (most of the EU, the UK, ...)"),
    (80, "life+80 countries (Spain for authors who died before 1987, Colombia, ...)"),
    (100, "Mexico (life+100)"),
)


def _death_year(note: str) -> int:
    found = re.search(r"\bd\. (\d{4})\b", note)
    if found is None:
        raise SystemExit(f"no death year ('d. YYYY') in the rights note {note!r}")
    return int(found.group(1))


def _first_year(year: str) -> int:
    found = re.search(r"\d{4}", year)
    if found is None:
        raise SystemExit(f"no publication year in {year!r}")
    return int(found.group(0))


def rights(entry: dict[str, Any], today: int) -> tuple[str, bool]:
    """A sentence saying where the work is public domain as of `today`, and if everywhere."""
    died = _death_year(str(entry["license_note"]))
    published = _first_year(str(entry["year"]))
    us_free = published < today - US_TERM_YEARS
    running = [(died + years + 1, where) for years, where in TERMS if died + years + 1 > today]
    if us_free and not running:
        return (
            f"public domain worldwide: published in {published}, and the artist died in "
            f"{died}, more than 100 years ago (the longest term anywhere, Mexico's, is life+100)",
            True,
        )
    us = f"the US (published {published})" if us_free else "no part of the US (published later)"
    free_where = [where for years, where in TERMS if died + years + 1 <= today]
    protected = "; ".join(f"{where} until {year}" for year, where in running)
    return (
        f"public domain in {us} and in {', '.join(free_where) or 'no life+N country'} "
        f"(the artist died in {died}); still protected in {protected}",
        False,
    )


def _where_free(entry: dict[str, Any], today: int) -> str:
    """The short licence line of a work not free everywhere: where it is public domain."""
    died = _death_year(str(entry["license_note"]))
    longest = max(years for years, _ in TERMS if died + years + 1 <= today)
    return f"public domain in the US and life+{longest} countries"


def encode(path: Path) -> tuple[bytes, int, int]:
    """The shipped bytes of a corpus file and their size in pixels."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if image.format == "JPEG" and max(image.size) <= MAX_SIDE and len(data) < COPY_BELOW_BYTES:
            return data, width, height
        rgb = image.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=QUALITY, optimize=True, progressive=False)
    return out.getvalue(), size[0], size[1]


def build(data_dir: Path, out: Path, *, worldwide_only: bool, today: int) -> list[dict[str, Any]]:
    corpus = {
        Path(entry["file"]).name: entry
        for entry in json.loads((data_dir / "manifest.json").read_text())
        if entry.get("kind") == "style"
    }
    out.mkdir(parents=True, exist_ok=True)
    shipped = []
    for style in curated.trained_styles(FEEDFORWARD, with_copies=False):
        entry = corpus.get(style.file)
        if entry is None or entry["sha256"] != style.sha256:
            raise SystemExit(f"{style.file}: not in {data_dir} as {FEEDFORWARD} trained on it")
        if entry["rights_category"] != "public domain":
            raise SystemExit(
                f"{style.file}: rights {entry['rights_category']!r}, not public domain"
            )
        sentence, worldwide = rights(entry, today)
        if worldwide_only and not worldwide:
            print(f"left out {style.file}: {sentence}", file=sys.stderr)
            continue
        data, width, height = encode(data_dir / entry["file"])
        name = f"{Path(style.file).stem}.jpg"
        (out / name).write_bytes(data)
        shipped.append(
            {
                "file": name,
                "kind": "style",
                "title": entry["title"],
                "artist": entry["artist"],
                "year": entry["year"],
                "rights_category": "public domain" if worldwide else _where_free(entry, today),
                "public_domain_worldwide": worldwide,
                "rights_as_of": f"{today}-01-01",
                "license_note": f"{sentence}. {entry['license_note']}",
                "source_repo": entry["source_repo"],
                "source_path": entry["source_path"],
                "source_commit": entry["source_commit"],
                "source_file": style.file,
                "source_sha256": style.sha256,
                "derivation": "copied unchanged"
                if data == (data_dir / entry["file"]).read_bytes()
                else f"longer side at most {MAX_SIDE} px (Lanczos), RGB JPEG quality {QUALITY}",
                "sha256": hashlib.sha256(data).hexdigest(),
                "width": width,
                "height": height,
                "bytes": len(data),
                "sketch_style": bool(entry.get("sketch_style")),
            }
        )
    for stale in set(out.glob("*.jpg")) - {out / item["file"] for item in shipped}:
        stale.unlink()
    (out / "manifest.json").write_text(json.dumps(shipped, indent=2, ensure_ascii=False) + "\n")
    return shipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CHECKOUT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--worldwide-only",
        action="store_true",
        help="leave out works still protected in some country (see each entry's rights)",
    )
    parser.add_argument(
        "--year", type=int, default=datetime.now(UTC).year, help="the year rights are as of"
    )
    args = parser.parse_args()
    get(FEEDFORWARD)  # a clear KeyError if the catalogue lost the version
    shipped = build(args.data, args.out, worldwide_only=args.worldwide_only, today=args.year)
    for item in shipped:
        flag = "" if item["public_domain_worldwide"] else "  (not PD everywhere)"
        print(f"{item['file']}: {item['width']}x{item['height']}, {item['bytes']} bytes{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
