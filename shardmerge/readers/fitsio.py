"""Reading FITS files strictly: one open that turns damage into a BadFileError naming the file (and benign
astropy warnings into oddities), gzip'd inputs inflated as a stream capped at what their headers announce
(`inflate.GzipSource`), data units checked for completeness against the file's size (header arithmetic in
Python ints) before anything is read, spectra longer than a limit refused from the headers, and their
CHECKSUM/DATASUM verified by the policy of `checksum.py`, and HDU structure from headers."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from ..errors import BadFileError, ShardmergeError
from . import fastfits
from .checksum import verify_hdu
from .inflate import GZIP_MAGIC, GzipSource, InflatedCopy, existing_copy, open_gzip
from .oddities import FITS_WARNING, Oddities
from .values import numeric_scaling

# astropy warnings that mean the bytes are damaged, not merely unconventional: they stay fatal
# (truncation; header bytes astropy would replace by "?"; a header that does not end on a block boundary)
_DAMAGE_WARNINGS = ("File may have been truncated", "non-ASCII characters", "Missing padding to end of the FITS block")


@contextmanager
def open_fits(path: str, raw: bytes | None = None, fast: bool = True, oddities: Oddities | None = None,  # noqa: PLR0913 - a keyword per bound and mode its callers choose
              headers_only: bool = False, rows_on_demand: bool = False,
              max_pixels: int | None = None, max_table_bytes: int | None = None) -> Iterator[fits.HDUList]:
    """Open a FITS file strictly: astropy warnings that signal damage (truncation) become errors, and every
    failure while the file is open becomes a BadFileError naming the file. Other astropy warnings (BLANK on
    a float image, a non-standard card: legacy IRAF/MIDAS files are full of them) are recorded in
    `oddities` (the scan's; the shard task passes none: the scan already said them), or refused when
    --strict names them. `raw`: the file's (already decompressed) bytes, when the caller has them, so they
    are not read or gunzipped a second time. With `fast`, a file of plain image HDUs is parsed by
    `fastfits` (about 4x cheaper than astropy); anything else, including every damaged file, goes through
    astropy. With `headers_only` (the scan), an uncompressed file is read header block by header block and
    its data units only when a reader asks for one (a table's wavelength column): the shard task reads the
    data, and verifies it, once. With `rows_on_demand` as well, a plain image's data is read as it is
    indexed (`fastfits.RowsOnDemand`); a gzip'd file is then read through `inflate.open_gzip`: in a shard
    task, its inflated copy on scratch (made once per run), else a `GzipSource` inflated as it is read.
    `max_pixels` (the scan's): an HDU whose header announces a longer spectrum is refused
    (`fastfits.check_pixels`), a gzip'd one before its data is inflated; `max_table_bytes` (the scan's): so is
    a binary table whose data unit is larger (`fastfits.check_table_bytes`: astropy reads tables whole)."""
    size = None  # the (inflated) file's size, that the headers' data units are checked against
    with warnings.catch_warnings():
        warned: list[str] = []
        _record_astropy_warnings(warned)
        try:
            hdul = None
            if headers_only and raw is None:
                hdul, raw, size = _open_source(path, fast, rows_on_demand, max_pixels, max_table_bytes)
            elif fast:
                raw = raw if raw is not None else read_bytes(path)
            if hdul is None and fast and raw is not None:
                hdul = fastfits.parse(raw)
            if hdul is None:
                hdul = _astropy_open(path, raw)
        except ShardmergeError:
            raise
        except Exception as exc:  # astropy raises many types for damaged files
            reason = _header_problem(path, raw) or _truncation(path, raw) or \
                f"not a readable FITS file ({_describe(exc)})"
            raise BadFileError(path, reason) from exc
        try:
            if headers_only:  # what the headers announce must be there, though the data is not read
                load_hdus(path, hdul)
                check_complete(path, hdul, size if size is not None else len(raw) if raw is not None
                               else os.path.getsize(path))
            _check_sizes(path, hdul, max_pixels, max_table_bytes)
            if isinstance(hdul, fits.HDUList):  # the fast path leaves scaled images (BSCALE/BZERO) to astropy
                numeric_scaling(path, hdul, oddities)
            yield hdul
            if oddities is not None:
                for text in warned:
                    oddities.add(FITS_WARNING, text)
        except ShardmergeError:
            raise
        except Exception as exc:
            raise BadFileError(path, _describe(exc)) from exc
        finally:
            hdul.close()


def _open_source(path: str, fast: bool, rows_on_demand: bool, max_pixels: int | None,
                 max_table_bytes: int | None) -> tuple[fastfits.FastHDUList | None, bytes | None, int]:
    """open_fits's `headers_only` open of a file it has no bytes of: one open for the fast path and gzip
    detection (a segment's reads are kept for its sums). Returns the fast path's HDUs, or None with the
    bytes astropy is to read (of a gzip'd file, as far as its headers announce; None: read the path), and
    the (inflated) file's size."""
    hdul = None
    raw = None
    file = fastfits.FileSource(path, record=rows_on_demand)
    try:
        if file.read(0, len(GZIP_MAGIC)) == GZIP_MAGIC:  # inflated forward, capped by its headers
            file.close()
            # a shard segment's rows: once per run, through an inflated copy (inflate.open_gzip)
            file = open_gzip(path, record=True, max_pixels=max_pixels) if rows_on_demand else \
                GzipSource(path, max_pixels=max_pixels, max_table_bytes=max_table_bytes)
        size = file.size
        if fast:  # None: a table astropy must read, or damage
            hdul = fastfits.parse_source(file, rows_on_demand)
        if hdul is None:  # astropy reads bytes: of a gzip'd file, as far as its headers announce
            raw = file.read(0, file.size) if isinstance(file, GzipSource | InflatedCopy) else None
    finally:
        if hdul is None:
            file.close()
    return hdul, raw, size


def _astropy_open(path: str, raw: bytes | None) -> fits.HDUList:
    """astropy's lazy open of `raw` (else of the file), once the structure its headers announce is sane."""
    problem = _structure(path, raw)  # before astropy acts on a header's word (TFIELDS = 2**31)
    if problem:
        raise BadFileError(path, problem)
    source = io.BytesIO(raw) if raw is not None else path
    return fits.open(source, memmap=False, lazy_load_hdus=True)


def _check_sizes(path: str, hdul: object, max_pixels: int | None, max_table_bytes: int | None) -> None:
    """From the headers (astropy reads data only when it is touched): no spectrum longer than `max_pixels`,
    no binary table larger than `max_table_bytes` (None: no limit)."""
    for i, hdu in enumerate(hdul):
        if max_pixels is not None:
            fastfits.check_pixels(path, i, hdu.header, max_pixels)
        if max_table_bytes is not None:
            fastfits.check_table_bytes(path, i, hdu.header, max_table_bytes)


def _record_astropy_warnings(into: list[str]) -> None:
    """Inside catch_warnings: astropy warnings go to `into` (once each), damage warnings raise, others
    behave as outside."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, AstropyWarning):
            text = f"{category.__name__}: {str(message).strip().splitlines()[0] if str(message).strip() else ''}"
            if text not in into:
                into.append(text)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", AstropyWarning)
    for pattern in _DAMAGE_WARNINGS:
        warnings.filterwarnings("error", message=pattern, category=AstropyWarning)
    warnings.showwarning = show


def _header_problem(path: str, raw: bytes | None) -> str | None:
    """A plainer reason than astropy's for the commonest header damage: a primary header whose END card
    is missing, so the parser runs into the binary data."""
    if raw is None:
        try:
            with open(path, "rb") as f:
                raw = f.read(1 << 20)
        except OSError:
            return None
        if raw.startswith(GZIP_MAGIC):
            return None
    if not raw.startswith(b"SIMPLE  ="):
        return None
    for at in range(0, len(raw) - 79, 80):
        card = raw[at : at + 80]
        if card.startswith(b"END     ") and not card[3:].strip():
            return None
        if any(b < 32 or b > 126 for b in card):
            where = f"card {at // 80 + 1} (byte {at})"
            if card[:8].strip() and all(32 <= b <= 126 for b in card[:10]):
                return f"header card {card[:8].decode().strip()!r} at {where} holds non-ASCII bytes"
            return f"the primary header has no END card: binary data begins at {where}"
    return "the primary header has no END card"


def _truncation(path: str, raw: bytes | None) -> str | None:
    """astropy's verdict on a header announcing more data than the file holds ("truncated"), which it
    cannot always give itself (a byte count past 2**63), from the headers alone."""
    return _from_headers(path, raw, fastfits.truncation)


def _structure(path: str, raw: bytes | None) -> str | None:
    """`fastfits.structure_problem` of the file's headers (of `raw` when given), or None."""
    return _from_headers(path, raw, fastfits.structure_problem)


def _from_headers(path: str, raw: bytes | None, judge: Callable[[object], str | None]) -> str | None:
    """`judge` of the file's headers, read from `raw` when given, else from the file; None where the file
    cannot be opened (astropy's open names what is wrong)."""
    try:
        source = fastfits._Bytes(raw) if raw is not None else fastfits.FileSource(path)
    except OSError:
        return None
    try:
        return judge(source)
    finally:
        source.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_complete(path: str, hdul: fits.HDUList, size: int) -> None:
    """Every data unit that the headers announce is within the file's `size` bytes (decompressed)."""
    for i in range(len(hdul)):
        info = hdul.fileinfo(i)
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise BadFileError(path, f"truncated: HDU {i} ends at byte {end}, the file has {size}")


def verify_file(path: str, hdul: fits.HDUList, raw: bytes | None = None,
                oddities: Oddities | None = None) -> None:
    """Every data unit complete, and every CHECKSUM/DATASUM card right (by the policy of
    `checksum.verify_hdu`), checked on the file's bytes (astropy only warns about a short file, and its own
    checksum pass costs ~2.6 ms per small file). What is odd but not damage goes to `oddities` (refused
    when --strict names it; without `oddities`, accepted silently). `raw`: the decompressed bytes hdul was
    opened from; else the file is read only if it carries sums."""
    spans = [hdul.fileinfo(i) for i in range(len(hdul))]
    with_sums = [i for i, hdu in enumerate(hdul) if "CHECKSUM" in hdu.header or "DATASUM" in hdu.header]
    if raw is None and with_sums:
        with open(path, "rb") as f:
            raw = f.read()
    check_complete(path, hdul, len(raw) if raw is not None else os.path.getsize(path))
    for i in with_sums:
        h = hdul[i].header
        verdict = verify_hdu(raw, spans[i]["hdrLoc"], spans[i]["datLoc"], spans[i]["datSpan"],
                             h.get("CHECKSUM"), h.get("DATASUM"))
        if verdict.damage:
            raise BadFileError(path, f"HDU {i}: {verdict.damage}")
        if verdict.odd and oddities is not None:
            oddities.add(verdict.kind, f"HDU {i}: {verdict.odd}")


@contextmanager
def open_verified(path: str, oddities: Oddities | None = None) -> Iterator[fits.HDUList]:
    """The shard task's open: the file read once, whole, and everything checked on those bytes before a
    value is used (completeness, CHECKSUM/DATASUM by the policy of `checksum.py`, astropy's warnings)."""
    raw = read_bytes(path)
    with open_fits(path, raw, oddities=oddities) as hdul:
        load_hdus(path, hdul)
        verify_file(path, hdul, raw, oddities)
        yield hdul


def whole_file_verdict(path: str, strict: frozenset[str] = frozenset()) -> tuple[str | None, list[str]]:
    """The file read whole and verified (`open_verified`), its values unused: (why it is damaged, or
    None; the oddities it was accepted with)."""
    oddities = Oddities(path, strict)
    try:
        with open_verified(path, oddities):
            pass
    except BadFileError as exc:
        return exc.reason, []
    return None, oddities.notes


@contextmanager
def open_rows(path: str, oddities: Oddities | None = None, verifies: bool = False) -> Iterator[fits.HDUList]:
    """The open of a shard segment that holds only some of a multi-spectrum file's spectra: headers read
    block by block, and of the data only the rows the reader indexes, so a file split between shards is
    read about once in all, not once per shard. Its data units are complete (the headers' sizes against
    the file's). Its CHECKSUM/DATASUM: read by the fast path, each segment sums the bytes it owns
    (`splitsums.segment_sums`, while the file is open) and the ingest adds them up once every segment's
    shard is written; read by astropy, the segment holding most of the file's spectra (`verifies`) reads
    the file whole and verifies it here. Either way the store cannot be published with the file damaged,
    and every shard task refuses a file whose size or modification time changed since the scan."""
    with open_fits(path, oddities=oddities, headers_only=True, rows_on_demand=True) as hdul:
        summed = any("CHECKSUM" in hdu.header or "DATASUM" in hdu.header for hdu in hdul)
        whole = verifies and summed and not isinstance(getattr(hdul, "source", None), fastfits.FileSource)
        if not whole:
            yield hdul
    if whole:
        with open_verified(path, oddities) as hdul:
            yield hdul


def read_bytes(path: str) -> bytes:
    """The file's bytes, one open, one read; a gzip'd file's inflated as far as its headers announce (and a
    bounded sample of what follows: `inflate.GzipSource`), never the whole stream; in a shard task, from
    the file's inflated copy when one was made (the same bytes)."""
    copy = existing_copy(path)
    if copy is not None:
        with open(copy, "rb") as f:
            return f.read()
    try:
        with open(path, "rb") as f:
            if f.read(len(GZIP_MAGIC)) != GZIP_MAGIC:
                f.seek(0)  # one read of the whole file into one buffer (`head + rest` copied it all again)
                return f.read()
    except OSError as exc:
        raise BadFileError(path, f"cannot read ({exc.strerror})") from exc
    source = GzipSource(path)
    try:
        return source.read(0, source.size)
    finally:
        source.close()


def load_hdus(path: str, hdul: fits.HDUList) -> int:
    """Force every HDU header to load (lazy HDU lists hide truncation until touched)."""
    hdul.readall()
    if len(hdul) == 0:
        raise BadFileError(path, "contains no HDU")
    return len(hdul)


def image_shape(header: fits.Header) -> tuple[int, ...]:
    """numpy shape of an image HDU from its header, without reading data."""
    naxis = int(header.get("NAXIS", 0))
    return tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))


def is_table(hdu: object) -> bool:
    """A binary table HDU, from astropy or from the fast path (fastfits.FastTableHDU)."""
    return isinstance(hdu, fits.BinTableHDU) or getattr(hdu, "is_table", False)


def is_image(hdu: object) -> bool:
    """An image HDU, from astropy or from the fast path (fastfits.FastImageHDU)."""
    return isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU) or getattr(hdu, "is_image", False)


def data_summary(header: fits.Header) -> str:
    """What an HDU's data unit holds, from its header: "image 4 x 1024" (numpy order), "table of 40 rows",
    or "" when it holds nothing (NAXIS = 0, an axis of length 0, a table without rows)."""
    xtension = str(header.get("XTENSION", "")).strip().upper()
    if xtension in ("BINTABLE", "TABLE") and not header.get("ZIMAGE", False):
        rows = int(header.get("NAXIS2", 0) or 0)
        return f"table of {rows} row{'s' if rows != 1 else ''}" if rows > 0 and int(header.get("NAXIS1", 0)) else ""
    shape = tuple(int(header.get(f"ZNAXIS{k}", 0)) for k in range(int(header.get("ZNAXIS", 0)), 0, -1)) \
        if header.get("ZIMAGE", False) else image_shape(header)
    if not shape or 0 in shape:
        return ""
    return "image " + " x ".join(map(str, shape))


def hdu_label(hdu: object) -> tuple[str, int]:
    """(EXTNAME, EXTVER) of an HDU as FITS defines them: EXTNAME stripped ("" when absent), EXTVER 1 when
    absent."""
    h = hdu.header
    name = str(h.get("EXTNAME", "")).strip()
    try:
        ver = int(h.get("EXTVER", 1))
    except (TypeError, ValueError):
        ver = 1
    return name, ver
