"""Refactors change no number (issue 37, item 5): the smoke records of the papers in `smoke_records.PAPERS` are
byte-identical to the hashes pinned in smoke_records.json (regenerate: `python tests/papers/smoke_records.py`, see
there why and when). About 55 s of CPU in all, the six smoke runs (59 s wall on 2 cores, 2026-12-07)."""

from __future__ import annotations

import json

import pytest
from smoke_records import FIXTURE, PAPERS, sha256, smoke_records, stack

PINNED = json.loads(FIXTURE.read_text())


def test_every_pinned_paper_has_a_hash():
    assert sorted(PINNED["papers"]) == sorted(PAPERS), "run `python tests/papers/smoke_records.py`"


@pytest.mark.parametrize("slug", PAPERS)
def test_smoke_records_are_byte_identical_to_the_pinned_hash(slug, tmp_path):
    here = stack()
    if here != PINNED["stack"]:
        changed = {k: (PINNED["stack"].get(k), v) for k, v in here.items() if PINNED["stack"].get(k) != v}
        pytest.skip(f"smoke_records.json was made on another stack (pinned, here): {changed}")
    records = smoke_records(slug, tmp_path)
    pinned, rows = PINNED["papers"][slug], records.count(b"\n")
    assert (sha256(records), rows) == (pinned["sha256"], pinned["rows"]), (
        f"{slug}'s smoke records changed ({rows} rows, pinned {pinned['rows']}): a refactor must not "
        "change numbers; if intended, run `python tests/papers/smoke_records.py` (say why in the commit)"
    )
