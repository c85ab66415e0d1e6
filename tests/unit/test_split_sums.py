"""The sums of a file split between shards: the ownership rule partitions every data unit, whatever the
segments; partial sums of any byte ranges add up to the whole's; the verdict on the added parts is a
whole read's. Pure: no shard tasks (tests/unit/test_shard_and_merge.py runs them)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmerge.readers.checksum import add_sums, ones_complement_sum, sum_at
from shardmerge.readers.splitsums import MAX_PLANES, covers_file, judge_split_file, owned_ranges


@st.composite
def _units(draw):
    """A data unit (shape, itemsize, padded span) and a split of its file's n spectra into segments."""
    n = draw(st.integers(1, 40))
    shape = draw(st.one_of(
        st.just((n, draw(st.integers(1, 9)))),  # rows: a 2-D image or a table
        st.just((draw(st.integers(1, 5)), n, draw(st.integers(1, 9)))),  # planes of rows
        st.just((draw(st.integers(MAX_PLANES + 1, MAX_PLANES + 3)), n, 2)),  # too many planes: by fraction
        st.lists(st.integers(1, 7).filter(lambda a: a != n), min_size=1, max_size=3).map(tuple),  # not by spectrum
        st.just(()),  # no data
    ))
    itemsize = draw(st.sampled_from([1, 2, 4, 8]))
    nbytes = math.prod(shape) * itemsize if shape else 0
    span = -(-nbytes // 2880) * 2880
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=min(6, n - 1)))) if n > 1 else []
    bounds = [0, *cuts, n]
    return shape, itemsize, span, n, [(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]


@given(unit=_units(), dat_loc=st.sampled_from([2880, 5760]))
@settings(max_examples=400, deadline=None)
def test_the_segments_own_every_byte_of_a_data_unit_once(unit, dat_loc):
    shape, itemsize, span, n, segments = unit
    owned = np.zeros(span, dtype=np.int64)
    for first, count in segments:
        for a, b in owned_ranges(dat_loc, span, shape, itemsize, first, count, n):
            assert dat_loc <= a < b <= dat_loc + span
            owned[a - dat_loc : b - dat_loc] += 1
    assert (owned == 1).all()


def test_a_segment_owns_its_own_rows_of_each_plane():
    """What it reads anyway: rows [2, 5) of a (planes 3, rows 10, 4 float32) image, in each plane."""
    ranges = owned_ranges(2880, 2880, (3, 10, 4), 4, 2, 3, 10)
    assert ranges == [(2880 + p * 160 + 32, 2880 + p * 160 + 80) for p in range(3)]


@given(data=st.binary(min_size=0, max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
@settings(max_examples=400, deadline=None)
def test_sums_of_any_byte_ranges_add_up_to_the_whole(data, cuts):
    padded = data + bytes(-len(data) % 4)
    whole = ones_complement_sum(padded)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    parts = [sum_at(data[a:b], 2880 + a) for a, b in zip(bounds, bounds[1:], strict=False)]
    assert add_sums(*parts) == whole


def _entry(first, count, n, header=1, data=0, checksum=None, datasum="0", span=2880):
    return {"first": first, "count": count, "n": n, "hdus": {"0": [header, data, checksum, datasum, span]}}


def test_the_segments_must_cover_the_file_once():
    assert covers_file([_entry(5, 5, 10), _entry(0, 5, 10)])
    assert not covers_file([_entry(0, 5, 10)])
    assert not covers_file([_entry(0, 6, 10), _entry(5, 5, 10)])


def test_the_added_parts_are_judged_as_a_whole_read():
    ok = [_entry(0, 2, 4, data=3, datasum="7"), _entry(2, 2, 4, data=4, datasum="7")]
    assert judge_split_file("f", ok) == (None, [])
    wrong = [_entry(0, 2, 4, data=3, datasum="9"), _entry(2, 2, 4, data=4, datasum="9")]
    assert "HDU 0: DATASUM mismatch: the data unit sums to 7" in judge_split_file("f", wrong)[0]
    placeholder = [_entry(0, 2, 4, data=3), _entry(2, 2, 4, data=4)]
    assert judge_split_file("f", placeholder)[1][0].startswith("placeholder-datasum: HDU 0: ")
    assert "refused: --strict placeholder-datasum" in judge_split_file(
        "f", placeholder, frozenset({"placeholder-datasum"}))[0]
    changed = [_entry(0, 2, 4, header=1), _entry(2, 2, 4, header=2)]
    assert "saw different headers" in judge_split_file("f", changed)[0]
