"""The stores shardmerge writes do not change by accident: the demo corpus, every synthetic survey layout
and every real file ingest to the fingerprint recorded in tests/data/store_fingerprints.json (decoded
values and attributes always; chunk files when the compressor's versions match the recorded ones)."""

from __future__ import annotations

import json

import pytest

from tests.fingerprint import CORPORA, RECORDED, build, compare, ingest, store_fingerprint


@pytest.mark.parametrize("name", CORPORA)
def test_the_store_matches_its_recorded_fingerprint(tmp_path, name):
    if name == "real":
        from tests.realdata.fetch import FetchError

        try:
            root = build(name, tmp_path)
        except FetchError as exc:
            import os

            if os.environ.get("CI"):
                raise
            pytest.skip(f"real survey files unavailable: {exc}")
    else:
        root = build(name, tmp_path)
    ingest(root, tmp_path / "out.zarr")
    recorded = json.loads(RECORDED.read_text())
    differences = compare(store_fingerprint(tmp_path / "out.zarr", root), recorded["corpora"][name])
    assert differences == [], "the store changed; if intended, record anew (see tests/fingerprint.py):\n" + \
        "\n".join(differences)
