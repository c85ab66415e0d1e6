"""A gzip'd input read as a stream, never inflated whole.

`GzipSource` is a `fastfits.FileSource` whose bytes are the inflated stream: it inflates forward in steps
of at most `STEP` bytes (`decompressobj` with `max_length`), discarding what lies before the offset asked
for, and starts again from the stream's beginning only to read backwards. On opening it reads the headers
block by block and inflates (and discards) each data unit to learn where the next header begins; it stops
at the end of the last HDU that the headers announce. What follows that end is inflated only as far as
`TRAIL_SAMPLE` bytes, and judged by the same policy as the trailing bytes of a plain file (zeros or
blanks: ignored; anything else: astropy's verdict, an oddity or damage), so a stream that goes on for GiB
past its headers costs nothing more. A header announcing a spectrum longer than `max_pixels` is refused
before its data unit is inflated at all, as is a table larger than `max_table_bytes`.

A gzip'd multi-spectrum file split between shards is inflated once per run, not once per shard task: inside
a shard task (`inflating_once`, set up by the shard task around its reads), `open_gzip` reads an inflated
copy on the task's scratch (`<scratch>/inflated/<key>.fits`, `key` from the file's path and its stat
identity, so a changed file is never read stale). The first task to need it inflates it there while the
others wait on an flock of `<key>.lock` (the kernel wakes them; a task that dies releases it): the
inflating `GzipSource` writes what it inflates during its one structure pass into `<key>.<uuid>.partial`,
fsynced, renamed into place. The copy holds exactly the bytes a `GzipSource` exposes (the headers' HDUs
plus the bounded trailing sample), so every reader, check and segment sum sees the same bytes. A copy that
would not fit (`SCRATCH_RESERVE_*` left free) is not made: the task reads the file as a stream, as
before, and says so in the log."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass

from ..errors import BadFileError
from ..filetable import stat_id
from .fastfits import (
    _PRINTABLE,
    BLOCK,
    MAX_HEADER_BYTES,
    FastHeader,
    FileSource,
    check_pixels,
    check_table_bytes,
    data_bytes,
)

log = logging.getLogger("shardmerge")

GZIP_MAGIC = b"\x1f\x8b"
STEP = 1 << 20  # bytes inflated (and compressed bytes read) at a time: what a read holds beyond its answer
TRAIL_SAMPLE = 2 * BLOCK  # of the bytes past the last HDU, what is inflated to judge them
INFLATED_DIR = "inflated"  # <scratch>/inflated/: copies of gzip'd inputs split between shards
# what an inflated copy must leave free on scratch (the shard stores need it): the larger of these
SCRATCH_RESERVE_BYTES = 1 << 30
SCRATCH_RESERVE_FRACTION = 0.05


@dataclass
class Inflations:
    """One shard task's gzip'd reads: where its inflated copies live, and what it inflated (`inflated_bytes`,
    recorded in its manifest and summed in the run report as bytes.inflated)."""

    folder: str
    inflated_bytes: int = 0
    copies_made: int = 0
    copies_read: int = 0
    streamed: int = 0  # files read as a stream: their copy would not fit on scratch


_TASK: ContextVar[Inflations | None] = ContextVar("shardmerge_inflations", default=None)


@contextmanager
def inflating_once(scratch: str) -> Iterator[Inflations]:
    """Within: gzip'd files opened through `open_gzip` (a shard segment's rows) are read from inflated
    copies under `scratch`, made once; and every GzipSource closed counts its inflated bytes here."""
    counter = Inflations(os.path.join(scratch, INFLATED_DIR))
    token = _TASK.set(counter)
    try:
        yield counter
    finally:
        _TASK.reset(token)


class GzipSource(FileSource):
    """A gzip'd file's inflated bytes, read at offsets (see the module's docstring). `size` is where the
    stream ends, or the end of the last HDU plus the sample of what follows it, whichever comes first.
    Header blocks and the trailing sample are kept (at most MAX_HEADER_BYTES + TRAIL_SAMPLE), so parsing
    the headers again inflates nothing."""

    def __init__(self, path: str, record: bool = False, max_pixels: int | None = None,
                 sink: _CopySink | None = None, max_table_bytes: int | None = None):
        super().__init__(path, record)
        self._compressed_size = self.size
        self._kept: dict[int, bytes] = {}  # offset -> header block (or the trailing sample)
        self.inflated_bytes = 0  # everything inflated so far, restarts included (for tests and reports)
        self._counter = _TASK.get()
        self._sink = sink  # gets what the structure pass inflates, in order: the inflated copy
        self._restart()
        try:
            self.size = self._structure(max_pixels, max_table_bytes)
        except BaseException:
            self.close()
            raise
        finally:
            self._sink = None

    def close(self) -> None:
        if self.fd >= 0 and self._counter is not None:
            self._counter.inflated_bytes += self.inflated_bytes
        super().close()

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
                if self._sink is not None:
                    self._sink.write(self._pos, part)
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
    def _structure(self, max_pixels: int | None, max_table_bytes: int | None) -> int:
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
            if max_table_bytes is not None:
                check_table_bytes(self.path, index, header, max_table_bytes)
            try:
                span = data_bytes(header)
            except (KeyError, TypeError, ValueError):
                return pos  # the parsers say what is wrong with this header
            padded = -(-span // BLOCK) * BLOCK
            if self._sink is not None:
                self._sink.room_for(pos + padded + TRAIL_SAMPLE)
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


class _CopySink:
    """Where a GzipSource's structure pass writes what it inflates: `<key>.<uuid>.partial` beside the copy.
    It gives up (`abandoned`: why), leaving the source a plain stream, when the copy would not leave
    `scratch_reserve` free, when the disk fills while writing, or when bytes do not come in order."""

    def __init__(self, final: str, lock_fd: int):
        self.final, self.lock_fd = final, lock_fd
        self.partial = f"{final[: -len('.fits')]}.{uuid.uuid4().hex}.partial"
        self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.at = 0
        self.abandoned = ""

    def room_for(self, end: int) -> None:
        """Give up unless the copy, once it holds `end` bytes, leaves the reserve free."""
        if self.abandoned:
            return
        free, reserve = free_and_reserve(os.path.dirname(self.final))
        if end - self.at > free - reserve:
            self.abandon(f"it would need {end} bytes and leave less than {reserve} free (of {free + self.at})")

    def write(self, pos: int, data: bytes) -> None:
        if self.abandoned:
            return
        if pos != self.at:
            self.abandon(f"bytes came out of order (at {pos}, expected {self.at})")
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self.abandon(f"writing it failed ({exc.strerror or exc})")
            return
        self.at += len(data)

    def abandon(self, why: str) -> None:
        """Give up the copy, and let the tasks waiting for it go on at once (each streams, or tries itself)."""
        self.abandoned = self.abandoned or why
        self.discard()
        with suppress(OSError):
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with suppress(FileNotFoundError):
            os.unlink(self.partial)

    def publish(self, size: int) -> bool:
        """Durably rename the partial into place if it holds the stream's `size` bytes; False if given up."""
        if not self.abandoned and self.at != size:
            self.abandon(f"it holds {self.at} bytes, the stream {size}")
        if self.abandoned:
            return False
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.rename(self.partial, self.final)
            dir_fd = os.open(os.path.dirname(self.final), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            self.abandon(f"putting it in place failed ({exc.strerror or exc})")
            return False
        return True


def free_and_reserve(folder: str) -> tuple[int, int]:
    """(bytes free to this user on `folder`'s filesystem, bytes an inflated copy must leave free there)."""
    st = os.statvfs(folder)
    reserve = max(SCRATCH_RESERVE_BYTES, int(SCRATCH_RESERVE_FRACTION * st.f_blocks * st.f_frsize))
    return st.f_bavail * st.f_frsize, reserve


class InflatedCopy(FileSource):
    """A gzip'd file's inflated copy on scratch, read at offsets as the file itself would be: `path` (what
    errors name) is the gzip'd file's, `copy_path` the copy's."""

    def __init__(self, path: str, copy_path: str, record: bool = False):
        super().__init__(copy_path, record)
        self.path, self.copy_path = path, copy_path


def copy_name(path: str, st: os.stat_result) -> str:
    """`<path digest>-<identity digest>.fits`: one name per file, another once it changes (size, mtime, inode,
    ctime: `filetable.stat_id`'s identity)."""
    where = hashlib.blake2b(os.fsencode(os.path.abspath(path)), digest_size=8).hexdigest()
    identity = hashlib.blake2b(b"%d:%d:%d" % (st.st_size, st.st_mtime_ns, stat_id(st)), digest_size=8).hexdigest()
    return f"{where}-{identity}.fits"


def open_gzip(path: str, record: bool = False, max_pixels: int | None = None) -> FileSource:
    """A gzip'd file's inflated bytes: outside a shard task (`inflating_once`), a `GzipSource`; inside one,
    its inflated copy on the task's scratch, made by the first task that needs it (see the module's
    docstring), or a `GzipSource` where the copy would not fit."""
    task = _TASK.get()
    if task is None:
        return GzipSource(path, record, max_pixels)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadFileError(path, f"cannot stat ({exc.strerror})") from exc
    os.makedirs(task.folder, mode=0o700, exist_ok=True)
    final = os.path.join(task.folder, copy_name(path, st))
    copy = _open_copy(path, final, record)
    if copy is not None:
        task.copies_read += 1
        return copy
    lock_fd = os.open(f"{final[: -len('.fits')]}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # while another task inflates it; released by its close or its death
        except OSError as exc:  # a filesystem without locks (NFS mounted nolock): tasks may inflate it at once,
            # each into a partial of its own, renamed atomically over one another (the same bytes)
            log.info("%s: no lock on %s (%s): tasks may inflate it at once", path, task.folder, exc.strerror)
        copy = _open_copy(path, final, record)
        if copy is not None:
            task.copies_read += 1
            return copy
        _sweep(task.folder, os.path.basename(final))
        sink = _CopySink(final, lock_fd)
        try:
            source = GzipSource(path, record, max_pixels, sink=sink)
        except BaseException:
            sink.discard()
            raise
        if _changed(path, st):
            sink.discard()
            source.close()
            raise BadFileError(path, "changed while it was inflated (size, modification time, inode or change time "
                                     "differ); rerun once nothing writes to it")
        if not sink.publish(source.size):
            task.streamed += 1
            log.warning("%s: read as a stream by each shard task holding its rows, not inflated once to %s: %s",
                        path, task.folder, sink.abandoned)
            return source
        source.close()
        task.copies_made += 1
        log.info("inflated %s once (%d bytes) to %s", path, sink.at, final)
        copy = _open_copy(path, final, record)
        if copy is None:
            raise BadFileError(path, f"its inflated copy {final} disappeared as it was made")
        return copy
    finally:
        os.close(lock_fd)  # releases the flock


def existing_copy(path: str) -> str | None:
    """Inside a shard task: the path of `path`'s inflated copy if one was made of the file as it is now."""
    task = _TASK.get()
    if task is None:
        return None
    try:
        final = os.path.join(task.folder, copy_name(path, os.stat(path)))
    except OSError:
        return None
    return final if os.path.isfile(final) else None


def _open_copy(path: str, final: str, record: bool) -> InflatedCopy | None:
    try:
        return InflatedCopy(path, final, record)
    except FileNotFoundError:
        return None


def _changed(path: str, st: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return True
    return (now.st_size, now.st_mtime_ns, now.st_ino, now.st_ctime_ns) != \
        (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _sweep(folder: str, name: str) -> None:
    """Under the lock of `name`: its crashed attempts' partials, and copies of the same file as it was before
    (another identity), go."""
    where = name.split("-", 1)[0]
    stem = name[: -len(".fits")]
    for other in os.listdir(folder):
        stale_copy = other.startswith(f"{where}-") and other.endswith(".fits") and other != name
        if stale_copy or (other.startswith(f"{stem}.") and other.endswith(".partial")):
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, other))
