"""FITS CHECKSUM / DATASUM verification on bytes already in memory.

The FITS checksum convention: DATASUM is the 32-bit ones'-complement sum of the data unit's big-endian
words (padding included), as a decimal string; CHECKSUM is chosen so that the ones'-complement sum of the
whole HDU (header and data) is -0 (all ones). astropy verifies both, but spends ~2.6 ms of Python per
small file doing it; a numpy sum over the same words costs microseconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BLOCK_WORDS = 1 << 22  # 16 MiB of words per partial sum: uint64 never overflows, temporaries stay small
_ALL_ONES = 0xFFFFFFFF


def ones_complement_sum(buf: bytes | memoryview, start: int = 0, stop: int | None = None) -> int:
    """32-bit ones'-complement (end-around carry) sum of big-endian words in buf[start:stop]."""
    words = np.frombuffer(buf, dtype=">u4", count=((stop if stop is not None else len(buf)) - start) // 4,
                          offset=start)
    total = 0
    for i in range(0, words.size, _BLOCK_WORDS):
        total += int(words[i : i + _BLOCK_WORDS].sum(dtype=np.uint64))
    while total >> 32:
        total = (total & _ALL_ONES) + (total >> 32)
    return total


@dataclass(frozen=True)
class SumCheck:
    """The verdict on one HDU's sums: `damage` refuses the file; `odd` (with its `kind`, a name that
    `--strict` accepts) is a known archive habit that leaves the data provably or plausibly intact."""

    damage: str | None = None
    kind: str = ""
    odd: str | None = None


PLACEHOLDER_DATASUM = "placeholder-datasum"
STALE_CHECKSUM = "stale-checksum"


def add_sums(*sums: int) -> int:
    """Ones'-complement sums of disjoint byte ranges combined: the sum of the bytes of all of them."""
    total = sum(sums)
    while total >> 32:
        total = (total & _ALL_ONES) + (total >> 32)
    return total


def sum_at(buf: bytes | memoryview, offset: int) -> int:
    """The ones'-complement sum of `buf` as the bytes at file offset `offset`: each byte counted in the lane
    of the big-endian word that holds it (header and data units start on 2880-byte blocks, so a byte's
    lane is its file offset mod 4). Sums of disjoint ranges add (`add_sums`) to the sum of their union, so
    the shards that each read part of a split file can verify its DATASUM together."""
    n = len(buf)
    head = min((-offset) % 4, n)
    body = (n - head) // 4 * 4
    total = ones_complement_sum(buf, head, head + body) if body else 0
    for j in (*range(head), *range(head + body, n)):
        total += buf[j] << (8 * (3 - (offset + j) % 4))
    return add_sums(total)


def verify_hdu(raw: bytes | memoryview, header_start: int, data_start: int, data_span: int,
               checksum: str | None, datasum: str | None) -> SumCheck:
    """`judge_sums` on the HDU's bytes in `raw`."""
    header_sum = ones_complement_sum(raw, header_start, data_start) if checksum is not None else None
    return judge_sums(header_sum, ones_complement_sum(raw, data_start, data_start + data_span), data_span,
                      checksum, datasum)


def judge_sums(header_sum: int | None, data_sum: int, data_span: int, checksum: str | None,
               datasum: str | None) -> SumCheck:
    """The policy: a DATASUM that is present and not a placeholder must match (else damage). DATASUM = '0'
    on an HDU that has data is the convention's value for "no data", which the ESO HARPS archive writes on
    every product: a placeholder, so the data unit is unverified (odd, not damage). A CHECKSUM that fails
    while DATASUM verifies the data unit means the header was edited after checksumming (IRAF `hedit`,
    `dopcor`): odd. A CHECKSUM that fails with nothing verifying the data unit is damage."""
    data_verified = placeholder = False
    if datasum is not None:
        try:
            expected = int(str(datasum).strip())
        except ValueError:
            return SumCheck(damage=f"DATASUM = {datasum!r} is not a number")
        if data_sum == expected:
            data_verified = True
        elif expected == 0 and data_span > 0:
            placeholder = True
        else:
            return SumCheck(damage=f"DATASUM mismatch: the data unit sums to {data_sum}, the card says {expected}")
    if checksum is not None:
        if header_sum is None:
            raise ValueError("a CHECKSUM is judged with its header's sum")
        if add_sums(header_sum, data_sum) == _ALL_ONES:
            return SumCheck()  # the whole HDU, data included, is verified: a placeholder DATASUM does not matter
        if not data_verified:
            return SumCheck(damage="CHECKSUM mismatch: the HDU's header and data do not sum to -0, and no DATASUM "
                                   "verifies the data unit")
        return SumCheck(kind=STALE_CHECKSUM, odd="CHECKSUM does not match but DATASUM does: the header was edited "
                                                 "after checksumming; the data unit is intact")
    if placeholder:
        return SumCheck(kind=PLACEHOLDER_DATASUM, odd="DATASUM = '0' (a placeholder) on an HDU with data: the data "
                                                      "unit could not be verified")
    return SumCheck()
