"""The vendored swagger and examples (tests/conformance/reference) are the files its README
names, byte for byte, and carry their licence."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import REFERENCE

README = REFERENCE.parent / "README.md"
ROW = re.compile(
    r"^\| `(?P<file>[^`]+)` \|.*\| (?P<bytes>\d+) \| `(?P<sha>[0-9a-f]{64})` \|$", re.M
)


def test_every_vendored_file_is_listed_with_its_size_and_hash() -> None:
    rows = {m["file"]: m for m in ROW.finditer(README.read_text(encoding="utf-8"))}
    present = {p.relative_to(REFERENCE).as_posix() for p in REFERENCE.rglob("*.json")}
    assert set(rows) == present
    for name, row in rows.items():
        data = (REFERENCE / name).read_bytes()
        assert len(data) == int(row["bytes"]), name
        assert hashlib.sha256(data).hexdigest() == row["sha"], name


def test_the_licence_is_vendored_with_them() -> None:
    text = (REFERENCE.parent / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("The MIT License (MIT)")
    assert "Copyright (c) 2017 Microsoft" in text
