"""The CHECKSUM/DATASUM of a file split between shards, verified by those shards together.

A multi-spectrum file whose spectra fall into several shards is read in parts: each shard task reads the
headers and its own rows. Reading the whole file once more just to verify its sums cost a fifth of the
input's bytes again on a corpus of 500-row images. Instead, every byte of each summed data unit is owned by
exactly one of the file's segments (`owned_ranges`, worked out alike by each from its spectrum range);
each segment sums the bytes it owns, nearly all of which it has read anyway (`segment_sums`), and the
ingest adds the parts once every segment's shard is written (`judge_split_file`): a ones'-complement sum
of disjoint ranges is the sum of their sums. The verdict follows the same policy as a whole read
(`checksum.judge_sums`).

`owned_ranges`, `covers_file` and `judge_split_file` are pure (the ingest's process imports no astropy for
them); `segment_sums` reads only through a recording `fastfits.FileSource`."""

from __future__ import annotations

import math

from ..errors import BadFileError
from .checksum import add_sums, judge_sums
from .oddities import Oddities

MAX_PLANES = 64  # an image of more planes than this, each holding the file's spectra, is owned by byte fraction


def owned_ranges(dat_loc: int, dat_span: int, shape: tuple[int, ...], itemsize: int, first: int, count: int,
                 n: int) -> list[tuple[int, int]]:
    """The file byte ranges of one data unit that the segment holding spectra [first, first + count) of the
    file's `n` owns. When an axis of the unit has length `n` (its spectra: rows of a 2-D image or a table,
    the second axis of planes × spectra × pixels), the segment owns its spectra's slices along it, which
    are what it reads; otherwise a share of the unit's bytes proportional to its spectra. The segment
    holding the last spectrum owns the padding too, so the segments' ranges partition the unit."""
    nbytes = math.prod(shape) * itemsize if shape else 0
    axis = next((i for i, length in enumerate(shape) if length == n), None)
    planes = math.prod(shape[:axis]) if axis is not None else 0
    ranges: list[tuple[int, int]] = []
    if axis is not None and planes <= MAX_PLANES:
        inner = math.prod(shape[axis + 1 :]) * itemsize
        for plane in range(planes):
            start = dat_loc + plane * n * inner
            ranges.append((start + first * inner, start + (first + count) * inner))
    else:
        ranges.append((dat_loc + nbytes * first // n, dat_loc + nbytes * (first + count) // n))
    if first + count == n:
        ranges.append((dat_loc + nbytes, dat_loc + dat_span))
    merged: list[tuple[int, int]] = []
    for start, stop in ranges:
        if start >= stop:
            continue
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged


def segment_sums(hdul: object, first: int, count: int, n: int) -> dict | None:
    """This segment's part of the file's sums, for the manifest: per HDU that carries CHECKSUM or DATASUM,
    [header sum, sum of the data bytes it owns, CHECKSUM, DATASUM, data span]. None when the file was not
    opened through a recording FileSource (astropy read it: the segment holding most of its spectra then
    verifies it whole) or carries no sums."""
    source = getattr(hdul, "source", None)  # a FastHDUList's; astropy's HDUList has none
    if getattr(source, "reads", None) is None:  # only a recording FileSource has reads
        return None
    hdus = {}
    for i, hdu in enumerate(hdul):
        checksum, datasum = hdu.header.get("CHECKSUM"), hdu.header.get("DATASUM")
        if checksum is None and datasum is None:
            continue
        shape, itemsize = hdu.byte_layout()
        ranges = owned_ranges(hdu.dat_loc, hdu.dat_span, shape, itemsize, first, count, n)
        data = add_sums(*(source.range_sum(a, b) for a, b in ranges))
        header = source.range_sum(hdu.hdr_loc, hdu.dat_loc) if checksum is not None else None
        hdus[str(i)] = [header, data, checksum, datasum, hdu.dat_span]
    return {"first": first, "count": count, "n": n, "hdus": hdus} if hdus else None


def covers_file(entries: list[dict]) -> bool:
    """Whether the segments' entries, one per segment, cover the file's spectra exactly once."""
    n = entries[0]["n"]
    at = 0
    for entry in sorted(entries, key=lambda e: e["first"]):
        if entry["first"] != at or entry["n"] != n:
            return False
        at += entry["count"]
    return at == n


def judge_split_file(path: str, entries: list[dict], strict: frozenset[str] = frozenset()
                     ) -> tuple[str | None, list[str]]:
    """(why the file is damaged, or None; the oddities it was accepted with), from the entries of all its
    segments (`covers_file`). Segments that saw different headers or sums cards mean the file changed
    while the run read it: damage, as a whole read would find."""
    oddities = Oddities(path, strict)
    try:
        for key in sorted({k for e in entries for k in e["hdus"]}, key=int):
            parts = [e["hdus"].get(key) for e in entries]
            if any(p is None for p in parts) or len({(p[0], *p[2:]) for p in parts}) != 1:
                raise BadFileError(path, f"HDU {key}: the shards that read parts of it saw different headers: it "
                                         "changed while the run read it; rerun once nothing writes to it")
            header, _, checksum, datasum, span = parts[0]
            verdict = judge_sums(header, add_sums(*(p[1] for p in parts)), span, checksum, datasum)
            if verdict.damage:
                raise BadFileError(path, f"HDU {key}: {verdict.damage}")
            if verdict.odd:
                oddities.add(verdict.kind, f"HDU {key}: {verdict.odd}")
    except BadFileError as exc:
        return exc.reason, []
    return None, oddities.notes
