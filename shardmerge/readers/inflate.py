"""A gzip'd input read as a stream, never inflated whole.

`GzipSource` is a `fastfits.FileSource` whose bytes are the inflated stream: it inflates forward in steps
of at most `STEP` bytes (`decompressobj` with `max_length`), discarding what lies before the offset asked
for, and starts again from the stream's beginning only to read backwards. On opening it reads the headers
block by block and inflates (and discards) each data unit to learn where the next header begins; it stops
at the end of the last HDU that the headers announce. What follows that end is inflated only as far as
`TRAIL_SAMPLE` bytes, and judged by the same policy as the trailing bytes of a plain file (zeros or
blanks: ignored; anything else: astropy's verdict, an oddity or damage), so a stream that goes on for GiB
past its headers costs nothing more. A header announcing a spectrum longer than `max_pixels` is refused
before its data unit is inflated at all."""

from __future__ import annotations

import os
import zlib

from ..errors import BadFileError
from .fastfits import _PRINTABLE, BLOCK, MAX_HEADER_BYTES, FastHeader, FileSource, check_pixels, data_bytes

GZIP_MAGIC = b"\x1f\x8b"
STEP = 1 << 20  # bytes inflated (and compressed bytes read) at a time: what a read holds beyond its answer
TRAIL_SAMPLE = 2 * BLOCK  # of the bytes past the last HDU, what is inflated to judge them


class GzipSource(FileSource):
    """A gzip'd file's inflated bytes, read at offsets (see the module's docstring). `size` is where the
    stream ends, or the end of the last HDU plus the sample of what follows it, whichever comes first.
    Header blocks and the trailing sample are kept (at most MAX_HEADER_BYTES + TRAIL_SAMPLE), so parsing
    the headers again inflates nothing."""

    def __init__(self, path: str, record: bool = False, max_pixels: int | None = None):
        super().__init__(path, record)
        self._compressed_size = self.size
        self._kept: dict[int, bytes] = {}  # offset -> header block (or the trailing sample)
        self.inflated_bytes = 0  # everything inflated so far, restarts included (for tests and reports)
        self._restart()
        self.size = self._structure(max_pixels)

    # -- the stream ------------------------------------------------------------------------------------
    def _restart(self) -> None:
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._in_at = 0  # compressed bytes consumed from the file
        self._pending = b""  # compressed bytes read, not yet inflated
        self._pos = 0  # offset, in the inflated stream, of the next byte _inflate gives
        self._ended = False

    def _inflate(self, n: int) -> bytes:
        """The next `n` inflated bytes (fewer where the stream ends), inflating at most STEP at a time."""
        out: list[bytes] = []
        while n > 0 and not self._ended:
            if not self._pending:
                self._pending = os.pread(self.fd, STEP, self._in_at)
                self._in_at += len(self._pending)
                if not self._pending:
                    if not self._z.eof:
                        raise BadFileError(self.path, "not a readable gzip file (EOFError: the stream ends "
                                                      "before its end-of-stream marker)")
                    self._ended = True
                    break
            if self._z.eof:  # a member ended: another may follow (gzip allows concatenated members)
                if not self._pending.startswith(GZIP_MAGIC[: len(self._pending)]):
                    raise BadFileError(self.path, "not a readable gzip file (bytes after the gzip stream that "
                                                  "are not another gzip member)")
                self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                part = self._z.decompress(self._pending, min(n, STEP))
            except zlib.error as exc:
                raise BadFileError(self.path, f"not a readable gzip file (zlib.error: {exc})") from exc
            self._pending = self._z.unconsumed_tail or self._z.unused_data
            if part:
                out.append(part)
                n -= len(part)
                self._pos += len(part)
                self.inflated_bytes += len(part)
        return b"".join(out)

    def _skip(self, n: int) -> int:
        """Inflate and discard `n` bytes; how many there were."""
        done = 0
        while done < n:
            part = self._inflate(min(n - done, STEP))
            if not part:
                break
            done += len(part)
        return done

    def read(self, offset: int, n: int) -> bytes:
        block = offset - offset % BLOCK
        for at in (block, block - BLOCK):  # a header block or the trailing sample: no inflating
            kept = self._kept.get(at)
            if kept is not None and at <= offset and offset + n <= at + len(kept):
                return kept[offset - at : offset - at + n]
        if offset < self._pos:
            self._restart()
        self._skip(offset - self._pos)
        data = self._inflate(n) if self._pos == offset else b""
        if self.reads is not None and data:
            self.reads.append((offset, data))
        return data

    # -- the headers -----------------------------------------------------------------------------------
    def _structure(self, max_pixels: int | None) -> int:
        pos = header_bytes = 0
        index = 0
        while True:
            start, cards, ended = pos, [], False
            while not ended:
                block = self.read(pos, BLOCK)
                if index and pos == start and not block.startswith(b"XTENSION"):
                    return self._sample(pos, block)  # past the last HDU: trailing bytes
                if len(block) < BLOCK or block.translate(None, _PRINTABLE):
                    return self._sample(pos, block)  # damage or oddity: the parsers judge these bytes
                header_bytes += BLOCK
                if header_bytes > MAX_HEADER_BYTES:
                    raise BadFileError(self.path, f"its headers run past {MAX_HEADER_BYTES} bytes (a header "
                                                  "without an END card?)")
                self._kept[pos] = block
                pos += BLOCK
                for k in range(0, BLOCK, 80):
                    card = block[k : k + 80]
                    if card.startswith(b"END     ") and not card[3:].strip():
                        ended = True
                        break
                    cards.append(card)
            header = FastHeader(cards)
            if max_pixels is not None:
                check_pixels(self.path, index, header, max_pixels)
            try:
                span = data_bytes(header)
            except (KeyError, TypeError, ValueError):
                return pos  # the parsers say what is wrong with this header
            padded = -(-span // BLOCK) * BLOCK
            got = self._skip(padded)
            if got < padded:
                return pos + got  # truncated: check_complete names it
            pos += padded
            index += 1

    def _sample(self, start: int, first: bytes) -> int:
        """Keep at most TRAIL_SAMPLE bytes from `start` (the first block of them already read: `first`);
        the stream's size, as far as anyone reads it, ends there."""
        sample = first + self.read(start + BLOCK, TRAIL_SAMPLE - BLOCK) if len(first) == BLOCK else first
        self._kept[start] = sample
        return start + len(sample)


def is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    except OSError as exc:
        raise BadFileError(path, f"cannot read ({exc.strerror})") from exc
