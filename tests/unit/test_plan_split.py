"""The plan split (issue 27 item 4): `Plan` is the shard plan and holds the store's `StoreLayout`; the layout
decides the store, the plan how its rows are cut into shards. The layout's names read through the plan."""

from __future__ import annotations

import pickle
from dataclasses import fields

from shardmerge.config import LayoutRequest
from shardmerge.plan import LAYOUT_NAMES, Plan, StoreLayout, make_plan

from .test_plan import scan


def _plan() -> Plan:
    return make_plan([scan(f"/d/f{i}", n=3, n_pix=50 + i) for i in range(7)], LayoutRequest(chunk_rows=2, shard_rows=4))


def test_the_plan_holds_the_layout_and_only_shard_fields_of_its_own():
    plan = _plan()
    assert isinstance(plan.layout, StoreLayout)
    own = {f.name for f in fields(Plan)}
    assert not own & {f.name for f in fields(StoreLayout)}
    assert own == {"layout", "shard_rows", "files_per_format", "spectra_per_format", "shards", "input_bytes",
                   "fingerprint", "files", "file_table", "wide_rows"}
    assert plan.layout.n_spec == 21 and plan.layout.n_pix == 56 and plan.shard_rows == 4


def test_every_layout_name_reads_through_the_plan():
    plan = _plan()
    assert {"n_spec", "chunks_2d", "write_rows", "capabilities", "estimated_bytes"} <= set(LAYOUT_NAMES)
    for name in LAYOUT_NAMES:
        through, direct = getattr(plan, name), getattr(plan.layout, name)
        if callable(direct):
            assert through() == direct()
        else:
            assert through == direct, name
    assert plan.chunks_2d == (plan.layout.chunk_rows, plan.layout.chunk_pix)


def test_a_task_context_keeps_the_layout_and_survives_pickling():
    plan = _plan()
    context = plan.context("/scratch/files.parquet")
    assert context.layout is plan.layout and context.shards == () and context.files is None
    again = pickle.loads(pickle.dumps(context))
    assert again == context and again.layout == plan.layout and again.n_pix == plan.n_pix


def test_the_layout_alone_does_not_depend_on_the_shard_cut():
    """Two shard sizes, one store: the same layout, different shard plans (and fingerprints)."""
    scans = [scan(f"/d/f{i}", n=3, n_pix=50) for i in range(7)]
    small, large = (make_plan(scans, LayoutRequest(chunk_rows=2, shard_rows=rows)) for rows in (4, 8))
    assert small.layout == large.layout
    assert len(small.shards) != len(large.shards) and small.fingerprint != large.fingerprint
