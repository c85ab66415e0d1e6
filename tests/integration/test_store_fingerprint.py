"""The stores shardmerge writes do not change by accident, nor with the CPU that writes them: the demo
corpus, every synthetic survey layout and every real file ingest to the fingerprint recorded in
tests/data/store_fingerprints.json (decoded values and attributes always; chunk files when the
compressor's versions match the recorded ones), both with numpy's CPU dispatch as it is (AVX-512 where
the machine has it) and limited to numpy's baseline in a child process."""

from __future__ import annotations

import json
import os

import pytest

from tests.fingerprint import (
    CORPORA,
    RECORDED,
    build,
    compare,
    enabled_dispatch,
    ingest,
    ingest_baseline_only,
    store_fingerprint,
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("dispatch", ["unrestricted", "baseline-only"])
@pytest.mark.parametrize("name", CORPORA)
def test_the_store_matches_its_recorded_fingerprint(tmp_path, name, dispatch):
    if name == "real":
        from tests.realdata.fetch import FetchError

        try:
            root = build(name, tmp_path)
        except FetchError as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"real survey files unavailable: {exc}")
    else:
        root = build(name, tmp_path)
    if dispatch == "unrestricted":
        ingest(root, tmp_path / "out.zarr")
    else:  # the same inputs, ingested where numpy may not use one SIMD kernel beyond its baseline
        assert ingest_baseline_only(root, tmp_path / "out.zarr") == [], "NPY_DISABLE_CPU_FEATURES had no effect"
    recorded = json.loads(RECORDED.read_text())
    differences = compare(store_fingerprint(tmp_path / "out.zarr", root), recorded["corpora"][name],
                          recorded["codec"])
    assert differences == [], (
        f"the store changed ({dispatch} CPU dispatch; enabled here: {enabled_dispatch()}); if intended, "
        "record anew (see tests/fingerprint.py):\n" + "\n".join(differences))
