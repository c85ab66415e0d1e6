"""A fast path for the commonest inputs: FITS files made of image HDUs (a 1-D or 2-D spectrum with its
error/ivar extensions) and plain binary tables (SDSS `spec-*`: fixed-width columns, no heap, no scaling),
read from bytes already in memory or, for the scan, from the file's header blocks alone (`parse_source`:
data units are seeked past and read only if a reader asks for them).

astropy spends ~0.7 ms opening and parsing a small file, far more than compressing its 16 KB of flux.
Here each header is split into 80-character cards, only the cards a reader asks for are parsed (with
astropy's own `Card.fromstring`, so values mean exactly what they mean to astropy), and data units are
`np.frombuffer` views. It presents the small part of the HDUList interface the readers use.

astropy spends ~2 ms more on a small file with tables (its Column objects, FITS_rec); here a table's data
is one numpy structured array, and a column reads as astropy gives it (big-endian numbers, `bool` for L,
a `chararray` of str for A, `(rows, repeat)` for arrays).

Anything unusual — an ASCII table, a heap (PCOUNT), scaled or null-flagged columns (TSCAL/TZERO/TNULL),
TDIM, bit or complex columns, a scaled integer image (BSCALE/BZERO/BLANK), a CONTINUE card, a byte that
is not printable ASCII, a missing END — returns None, and the caller opens the file with astropy, which
raises the precise error or reads what this does not."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .checksum import add_sums, sum_at

BLOCK = 2880
# The most header bytes one file may hold, all its HDUs together. Real headers are kilobytes (an ESO SDP
# product's ~100 KB, an IRAF multispec's WAT cards a few hundred KB); a header that never ends (a block of
# blanks repeated, a few KB once gzip'd) would otherwise be parsed, and held, whole.
MAX_HEADER_BYTES = 64 * 2**20
_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_PRINTABLE = bytes(range(32, 127))


class FastHeader:
    """Keyword lookups on raw cards; values parsed on first use. The first card of a keyword wins, as in
    astropy's Header[...]."""

    def __init__(self, cards: list[bytes]):
        self._raw = cards
        self._keys = [_keyword(card) for card in cards]
        self._index: dict[str, int] = {}
        for i, key in enumerate(self._keys):
            if key and key not in ("COMMENT", "HISTORY") and key not in self._index:
                self._index[key] = i
        self._values: dict[str, object] = {}

    def __contains__(self, key: str) -> bool:
        return key.upper() in self._index

    def __getitem__(self, key: str) -> object:
        key = key.upper()
        if key not in self._values:
            if key not in self._index:
                raise KeyError(key)
            self._values[key] = card_value(self._raw[self._index[key]])
        return self._values[key]

    def get(self, key: str, default: object = None) -> object:
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def keys(self) -> list[str]:
        return list(self._index)

    @property
    def cards(self) -> Iterator[_LazyCard]:
        """Every card in order (duplicates, COMMENT, HISTORY and blank ones too, as astropy's Header.cards),
        each value parsed only when asked for."""
        for key, raw in zip(self._keys, self._raw, strict=True):
            yield _LazyCard(key, raw)


class _LazyCard:
    __slots__ = ("keyword", "_raw")

    def __init__(self, keyword: str, raw: bytes):
        self.keyword = keyword
        self._raw = raw

    @property
    def value(self) -> object:
        return card_value(self._raw)


class _Bytes:
    """A file's bytes already in memory: data units are views."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.size = len(raw)

    def read(self, offset: int, n: int) -> bytes:
        return self.raw[offset : offset + n]

    def array(self, offset: int, count: int, dtype: str) -> np.ndarray:
        return np.frombuffer(self.raw, dtype=dtype, count=count, offset=offset)

    def close(self) -> None:
        pass


class FileSource:
    """A file read at offsets (pread): the scan reads header blocks and seeks past data units it does not
    need, so each input's data is read once, by the shard task that stores it. With `record`, what was
    read is kept (the bytes objects the arrays already view), so that `range_sum` can checksum a byte
    range without reading it again."""

    def __init__(self, path: str, record: bool = False):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.reads: list[tuple[int, bytes]] | None = [] if record else None

    def read(self, offset: int, n: int) -> bytes:
        at, parts = offset, []
        while n > 0:
            part = os.pread(self.fd, n, at)
            if not part:
                break
            parts.append(part)
            at += len(part)
            n -= len(part)
        data = b"".join(parts)
        if self.reads is not None and data:
            self.reads.append((offset, data))
        return data

    def range_sum(self, start: int, stop: int) -> int:
        """The FITS ones'-complement sum of bytes [start, stop): the parts already read summed where they
        lie, the rest read now (and kept)."""
        total, at = 0, start
        while at < stop:
            held, upto = None, stop
            for offset, data in self.reads or ():
                end = offset + len(data)
                if offset <= at < end and (held is None or end > held[0] + len(held[1])):
                    held = (offset, data)
                elif at < offset < upto:
                    upto = offset  # the next part already read: read only up to it
            if held is not None:
                offset, data = held
                upto = min(stop, offset + len(data))
                total += sum_at(memoryview(data)[at - offset : upto - offset], at)
            else:
                data = self.read(at, upto - at)
                if len(data) < upto - at:
                    raise BadFileError(self.path, f"truncated while being read: no bytes past {at + len(data)}")
                total += sum_at(data, at)
            at = upto
        return add_sums(total)

    def array(self, offset: int, count: int, dtype: str) -> np.ndarray:
        return np.frombuffer(self.read(offset, count * np.dtype(dtype).itemsize), dtype=dtype, count=count)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _FastHDU:
    """What every fast HDU has: its header, where its bytes come from, and where it lies in the file."""

    is_image = False
    is_table = False

    def __init__(self, header: FastHeader, source: _Bytes | FileSource, hdr_loc: int, dat_loc: int, dat_span: int):
        self.header = header
        self._source = source
        self.hdr_loc, self.dat_loc, self.dat_span = hdr_loc, dat_loc, dat_span

    def byte_layout(self) -> tuple[tuple[int, ...], int]:
        """The data unit as (numpy shape, bytes per item), padding excluded."""
        raise NotImplementedError


class FastImageHDU(_FastHDU):
    is_image = True

    def __init__(self, header: FastHeader, source: _Bytes | FileSource, hdr_loc: int, dat_loc: int, dat_span: int,  # noqa: PLR0913 - one HDU's parsed geometry, built in one place (_parse)
                 shape: tuple, dtype: str, primary: bool):
        super().__init__(header, source, hdr_loc, dat_loc, dat_span)
        self.shape = shape
        self._dtype = dtype
        self.primary = primary
        self._on_demand: RowsOnDemand | None = None

    rows_on_demand = False  # set by parse_source(..., rows_on_demand=True)

    def byte_layout(self) -> tuple[tuple[int, ...], int]:
        return self.shape, np.dtype(self._dtype).itemsize

    @property
    def data(self) -> np.ndarray | RowsOnDemand | None:
        if not self.shape:
            return None
        if self.rows_on_demand and isinstance(self._source, FileSource):
            if self._on_demand is None:  # one per HDU, as astropy's .data: a whole read happens once
                self._on_demand = RowsOnDemand(self, self.shape)
            return self._on_demand
        return self.read_rows(0, self.shape[0], self.shape)

    def read_rows(self, start: int, stop: int, shape: tuple) -> np.ndarray:
        """Rows [start, stop) of the data unit seen with `shape` (its own, or a reshape that keeps the
        last axis), by one read."""
        per_row = math.prod(shape[1:])  # Python ints: a header's axes cannot wrap a byte count
        offset = self.dat_loc + start * per_row * np.dtype(self._dtype).itemsize
        return self._source.array(offset, (stop - start) * per_row, self._dtype).reshape((stop - start, *shape[1:]))


class RowsOnDemand:
    """An image's data unit read as it is indexed: a slice of rows reads only those rows (a shard segment
    that holds part of a multi-spectrum file reads its own rows, not the file); anything else reads the
    unit whole, once, and behaves as that array. Readers index rows (`data[rows]`,
    `data.reshape(-1, n)[rows]`) and stay correct whatever they do."""

    def __init__(self, hdu: FastImageHDU, shape: tuple):
        self._hdu = hdu
        self.shape = shape
        self.ndim = len(shape)
        self.dtype = np.dtype(hdu._dtype)
        self._whole: np.ndarray | None = None

    def _all(self) -> np.ndarray:
        if self._whole is None:
            self._whole = self._hdu.read_rows(0, self.shape[0], self.shape)
        return self._whole

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        whole = self._all()
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def reshape(self, *shape: int | tuple) -> np.ndarray | RowsOnDemand:
        want = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else tuple(shape)
        last = self.shape[-1]
        rows = math.prod(self.shape[:-1])
        if len(want) == 2 and want[1] == last and want[0] in (-1, rows):
            return RowsOnDemand(self._hdu, (rows, last))
        return self._all().reshape(want)

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(self.shape[0])
            return self._hdu.read_rows(start, max(start, stop), self.shape)
        if isinstance(key, int | np.integer) and -self.shape[0] <= key < self.shape[0]:
            k = int(key) % self.shape[0]
            return self._hdu.read_rows(k, k + 1, self.shape)[0]
        return self._all()[key]

    def __getattr__(self, name: str) -> object:
        return getattr(self._all(), name)


_TFORM = re.compile(r"\s*([0-9]*)([LBIJKEDA])\s*")
_COLUMN_DTYPE = {"L": "S1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_TABLE_REFUSED = ("TSCAL", "TZERO", "TNULL", "TDIM", "THEAP")


class FastFormat:
    """What readers ask of astropy's column format: `repeat`, `format` (the letter), and its TFORM text."""

    def __init__(self, repeat: int, code: str, text: str):
        self.repeat, self.format, self._text = repeat, code, text

    def __str__(self) -> str:
        return self._text


class FastColumn:
    def __init__(self, name: str, fmt: FastFormat, unit: str | None):
        self.name, self.format, self.unit = name, fmt, unit


class FastColumns(list):
    """A list of FastColumn with astropy ColDefs' `names` and lookup by name (exact, else any case)."""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self]

    def index_of(self, name: str) -> int:
        names = self.names
        if name in names:
            return names.index(name)
        folded = [n.lower() for n in names]
        if name.lower() in folded:
            return folded.index(name.lower())
        raise KeyError(f"Key '{name}' does not exist.")

    def __getitem__(self, key):  # noqa: ANN001 - an index, a slice or a name, as ColDefs takes
        return super().__getitem__(self.index_of(key) if isinstance(key, str) else key)


class FastTableData:
    """A table's rows as one structured array; `[name]` and `.field(k)` give columns as astropy does."""

    def __init__(self, records: np.ndarray, columns: FastColumns):
        self._records = records
        self.columns = columns

    def __len__(self) -> int:
        return self._records.shape[0]

    def field(self, key: int | str) -> np.ndarray:
        k = key if isinstance(key, int) else self.columns.index_of(key)
        column = self.columns[k]
        values = self._records[f"f{k}"]
        if column.format.format == "L":
            return values == b"T"
        if column.format.format == "A":  # np.char.decode of an empty array would give float64
            text = np.char.decode(values, "ascii") if values.size else values.astype(values.dtype.str.replace("S", "U"))
            return text.view(np.char.chararray)
        return values

    def __getitem__(self, key: int | str) -> np.ndarray:
        return self.field(key)


def _table_layout(header: FastHeader) -> tuple[FastColumns, np.dtype] | None:
    """The columns and row dtype of a plain binary table; None for anything this path does not read."""
    try:
        n_fields, row_bytes = int(header["TFIELDS"]), int(header["NAXIS1"])
        if int(header.get("PCOUNT", 0)) != 0 or int(header.get("GCOUNT", 1)) != 1:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    if any(k.startswith(_TABLE_REFUSED) for k in header):
        return None
    columns, fields = FastColumns(), []
    for k in range(1, n_fields + 1):
        text = str(header.get(f"TFORM{k}", "")).strip()
        m = _TFORM.fullmatch(text)
        if not m:
            return None
        repeat, code = int(m.group(1) or 1), m.group(2)
        if repeat == 0 or repeat > row_bytes:
            return None  # a zero-width column, or one wider than the row (structure_problem names it): astropy
        dtype = f"S{repeat}" if code == "A" else _COLUMN_DTYPE[code]
        fields.append((f"f{k - 1}", dtype, (repeat,)) if repeat != 1 and code != "A" else (f"f{k - 1}", dtype))
        unit = header.get(f"TUNIT{k}")
        columns.append(FastColumn(str(header.get(f"TTYPE{k}", "")).strip(), FastFormat(repeat, code, text),
                                  None if unit is None else str(unit)))
    dtype = np.dtype(fields)
    if dtype.itemsize != row_bytes:
        return None
    return columns, dtype


class FastTableHDU(_FastHDU):
    is_table = True

    def __init__(self, header: FastHeader, source: _Bytes | FileSource, hdr_loc: int, dat_loc: int, dat_span: int,  # noqa: PLR0913 - one HDU's parsed geometry, built in one place (_parse)
                 columns: FastColumns, row_dtype: np.dtype, n_rows: int):
        super().__init__(header, source, hdr_loc, dat_loc, dat_span)
        self.columns = columns
        self._row_dtype = row_dtype
        self._n_rows = n_rows
        self._data: FastTableData | None = None

    def byte_layout(self) -> tuple[tuple[int, ...], int]:
        return (self._n_rows, self._row_dtype.itemsize), 1

    @property
    def data(self) -> FastTableData:
        if self._data is None:
            records = self._source.array(self.dat_loc, self._n_rows, self._row_dtype) if self._n_rows else \
                np.zeros(0, dtype=self._row_dtype)
            self._data = FastTableData(records, self.columns)
        return self._data


class FastHDUList:
    def __init__(self, hdus: list[_FastHDU], source: _Bytes | FileSource):
        self._hdus = hdus
        self._source = source

    def __len__(self) -> int:
        return len(self._hdus)

    def __getitem__(self, i):
        return self._hdus[i]

    def __iter__(self) -> Iterator[_FastHDU]:
        return iter(self._hdus)

    @property
    def source(self) -> _Bytes | FileSource:
        return self._source

    def fileinfo(self, i: int) -> dict:
        h = self._hdus[i]
        return {"hdrLoc": h.hdr_loc, "datLoc": h.dat_loc, "datSpan": h.dat_span}

    def readall(self) -> None:
        pass

    def close(self) -> None:
        self._source.close()


_INT = re.compile(rb"[+-]?[0-9]+")
_FLOAT = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[EeDd][+-]?[0-9]+)?")


# A survey's files repeat most of their cards byte for byte (BITPIX, CTYPE1, BUNIT, TELESCOP, ...): the
# plain values parsed, and every keyword, are kept by the card's bytes. Bounded: past the limit, parsed anew.
_MEMO_MAX = 1 << 16
_VALUES: dict[bytes, object] = {}
_KEYWORDS: dict[bytes, str] = {}
_ASTROPY = object()  # _plain_value's answer for a card only astropy parses


def card_value(card: bytes) -> object:
    """The value of a `KEYWORD = value / comment` card (HIERARCH ones too), as astropy gives it, for the
    plain cases (integer, real, logical, simple string); anything else (complex, undefined, odd quoting)
    goes to astropy's Card.fromstring. Plain values are remembered by the card's bytes (_VALUES)."""
    value = _VALUES.get(card, _ASTROPY)
    if value is not _ASTROPY:
        return value
    value = _plain_value(card)
    if value is _ASTROPY:
        return fits.Card.fromstring(card.decode("ascii")).value
    if len(_VALUES) < _MEMO_MAX:
        _VALUES[bytes(card)] = value
    return value


def _plain_value(card: bytes) -> object:
    """card_value's plain cases; _ASTROPY for anything astropy must parse."""
    if card.startswith(b"HIERARCH "):
        eq = card.find(b"=")
        field = card[eq + 1 :].lstrip(b" ") if eq > 9 else None
    else:
        field = card[10:].lstrip(b" ") if card[8:10] == b"= " else None
    if field is not None:
        if field.startswith(b"'"):
            end = field.find(b"'", 1)
            if end > 0 and field[end + 1 : end + 2] != b"'" and b"''" not in field[: end + 1]:
                rest = field[end + 1 :].strip(b" ")
                if not rest or rest.startswith(b"/"):
                    return field[1:end].rstrip(b" ").decode("ascii")
        else:
            token = field.split(b"/", 1)[0].strip(b" ")
            if token in (b"T", b"F"):
                return token == b"T"
            if _INT.fullmatch(token):
                return int(token)
            if _FLOAT.fullmatch(token):
                return float(token.replace(b"D", b"E").replace(b"d", b"e"))
    return _ASTROPY


def _keyword(card: bytes) -> str:
    if card.startswith(b"HIERARCH "):
        head = card[9:].split(b"=", 1)[0]
        return " ".join(head.decode("ascii").split()).upper()
    head = card[:8]
    key = _KEYWORDS.get(head)
    if key is None:
        key = head.decode("ascii").strip().upper()
        if len(_KEYWORDS) < _MEMO_MAX:
            _KEYWORDS[bytes(head)] = key
    return key


def parse(raw: bytes) -> FastHDUList | None:
    """The file's HDUs if every one is a plain image, else None (use astropy)."""
    return _parse(_Bytes(raw))


def parse_source(source: FileSource, rows_on_demand: bool = False) -> FastHDUList | None:
    """As `parse`, reading only the header blocks (and a data unit when a reader asks for its `.data`;
    with `rows_on_demand`, only the rows it indexes: `RowsOnDemand`). The list owns `source` (its close
    closes it); on None, the caller still does."""
    hdul = _parse(source)
    if hdul is not None and rows_on_demand:
        for hdu in hdul:
            if hdu.is_image:
                hdu.rows_on_demand = True
    return hdul


def data_bytes(header: FastHeader | fits.Header) -> int:
    """The data unit's size in bytes, padding excluded, by the FITS standard's formula (|BITPIX|/8 x GCOUNT x
    (PCOUNT + NAXIS1 x ... x NAXISn), NAXIS1 left out of random groups), in Python ints: no header can wrap it
    (NAXIS1 = 4096, NAXIS2 = 2**52 is 2**66 bytes, not 0). Raises KeyError, TypeError or ValueError for a
    header without the values."""
    bitpix, naxis = int(header["BITPIX"]), int(header["NAXIS"])
    if not 0 <= naxis <= 999 or abs(bitpix) not in (8, 16, 32, 64):
        raise ValueError(f"BITPIX = {bitpix}, NAXIS = {naxis}")
    if naxis == 0:
        return 0
    axes = [int(header[f"NAXIS{j}"]) for j in range(1, naxis + 1)]
    if any(a < 0 for a in axes):
        raise ValueError(f"a negative axis: {axes}")
    if header.get("GROUPS") is True and axes[0] == 0:
        axes = axes[1:]
    return abs(bitpix) // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + math.prod(axes))


def check_pixels(path: str, index: int, header: FastHeader | fits.Header, max_pixels: int) -> None:
    """Refuse, from its header alone, an HDU that could hold a spectrum longer than `max_pixels`: an image's
    axis 1 (every image layout's dispersion axis), a table's rows (a pixel a row: table-1d, SDSS coadds)
    or an array column's repeat count (a spectrum a row)."""
    xtension = str(header.get("XTENSION", "")).strip().upper() if index else ""
    lengths: list[tuple[int, str]] = []
    try:
        if xtension in ("BINTABLE", "TABLE"):
            lengths.append((int(header.get("NAXIS2", 0)), "a table of {n} rows"))
            for k in range(1, min(int(header.get("TFIELDS", 0)), 999) + 1):
                form = str(header.get(f"TFORM{k}", ""))
                m = re.match(r"\s*([0-9]+)", form)
                if m:
                    lengths.append((int(m.group(1)), f"column {k} of {{n}} values a row"))
                m = re.match(r"\s*[0-9]*[PQ][A-Z]\(\s*([0-9]+)", form)  # an array column's longest array (emax)
                if m:
                    lengths.append((int(m.group(1)), f"column {k} of arrays up to {{n}} values long (TFORM{k})"))
        elif xtension in ("", "IMAGE") and int(header.get("NAXIS", 0)) >= 1:
            lengths.append((int(header.get("NAXIS1", 0)), "an image {n} pixels wide (NAXIS1)"))
    except (TypeError, ValueError):
        return  # not numbers: the parsers say what is wrong
    for n, what in lengths:
        if n > max_pixels:
            raise BadFileError(path, f"HDU {index} holds {what.format(n=n)}: spectra longer than {max_pixels} "
                                     f"pixels are refused (--max-pixels N raises the limit)")


def check_table_bytes(path: str, index: int, header: FastHeader | fits.Header, max_table_bytes: int) -> None:
    """Refuse, from its header alone, a binary table whose data unit (NAXIS1 x NAXIS2 + PCOUNT: rows and heap)
    is larger than `max_table_bytes`: astropy reads a table whole, whatever rows a task needs, so that is
    what one costs a task in memory (a 2**24-row table of 1024-byte rows is 16 GiB, every length within
    --max-pixels)."""
    xtension = str(header.get("XTENSION", "")).strip().upper() if index else ""
    if xtension not in ("BINTABLE", "TABLE"):
        return
    try:
        nbytes = data_bytes(header)
    except (KeyError, TypeError, ValueError):
        return  # the parsers say what is wrong
    if nbytes > max_table_bytes:
        raise BadFileError(path, f"HDU {index} is a table of {nbytes} bytes ({int(header.get('NAXIS2', 0))} rows "
                                 f"of {int(header.get('NAXIS1', 0))} bytes, heap included): tables larger than "
                                 f"{max_table_bytes} bytes are refused, as a table is read whole "
                                 f"(--max-table-bytes N raises the limit)")


# A binary table column's bytes per repeat, by TFORM code (X: bits, counted apart); P and Q: descriptors
_BINTABLE_WIDTH = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16, "P": 8, "Q": 16}
_ANY_TFORM = re.compile(r"\s*([0-9]*)([LXBIJKAEDCMPQ])")
_BITPIX_VALUES = tuple(_BITPIX)


def header_problem(header: FastHeader, index: int) -> str | None:
    """Why `header` breaks the FITS standard's mandatory keywords in a way a parser would act on (astropy
    makes a list of TFIELDS entries before it looks at one: TFIELDS = 2**31 is a MemoryError at ~4 GB, and
    a KeyError, IndexError or TypeError names nothing for an odd BITPIX or NAXIS): BITPIX one of the six
    values, NAXIS 0..999 with every NAXISn an integer >= 0, TFIELDS 0..999, and no binary table column
    wider than the row (NAXIS1; a repeat count of 10**20 overflows numpy's shapes). Only values present
    are judged; None when nothing is wrong."""
    where = f"HDU {index}"
    try:
        values = {k: header[k] for k in ("BITPIX", "NAXIS") if k in header}
        if "BITPIX" in values and (type(values["BITPIX"]) is not int or values["BITPIX"] not in _BITPIX_VALUES):
            return (f"{where}: BITPIX = {values['BITPIX']!r} is not a FITS value "
                    f"({', '.join(map(str, _BITPIX_VALUES))})")
        naxis = values.get("NAXIS")
        if naxis is None:
            return None
        if type(naxis) is not int or not 0 <= naxis <= 999:
            return f"{where}: NAXIS = {naxis!r} is not an axis count of 0 to 999"
        axes = []
        for j in range(1, naxis + 1):
            n = header.get(f"NAXIS{j}")
            if type(n) is not int or n < 0:
                said = "missing" if n is None else f"{n!r}, not a length >= 0"
                return f"{where}: NAXIS = {naxis} but NAXIS{j} is {said}"
            axes.append(n)
        xtension = str(header.get("XTENSION", "")).strip().upper() if index else ""
        if xtension not in ("BINTABLE", "TABLE", "A3DTABLE") or "TFIELDS" not in header:
            return None
        fields = header["TFIELDS"]
        if type(fields) is not int or not 0 <= fields <= 999:
            return f"{where}: TFIELDS = {fields!r} is not a column count of 0 to 999"
        if xtension == "TABLE" or not axes:
            return None
        for k in range(1, fields + 1):
            m = _ANY_TFORM.match(str(header.get(f"TFORM{k}", "")))
            if m:
                repeat = int(m.group(1) or 1)
                width = -(-repeat // 8) if m.group(2) == "X" else repeat * _BINTABLE_WIDTH[m.group(2)]
                if width > axes[0]:
                    return (f"{where}: TFORM{k} = {str(header[f'TFORM{k}']).strip()!r} is {width} bytes a row, "
                            f"more than the row's {axes[0]} (NAXIS1)")
    except Exception:  # noqa: BLE001 - a card no parser reads: astropy's own verdict stands
        return None
    return None


def _header_at(source: _Bytes | FileSource, pos: int, header_bytes: int,
               first_word: bytes | None = None) -> tuple[list[bytes], int, int] | None:
    """The cards of the header at `pos` (up to its END card), the position after it and the header bytes read
    so far (with `header_bytes` before it); None where a block is short or the headers pass MAX_HEADER_BYTES,
    and, given `first_word`, where a block is not printable ASCII or the header does not start with it."""
    cards: list[bytes] = []
    while True:
        block = source.read(pos, BLOCK)
        header_bytes += BLOCK
        if len(block) < BLOCK or header_bytes > MAX_HEADER_BYTES:
            return None
        if first_word is not None and (block.translate(None, _PRINTABLE)
                                       or (not cards and not block.startswith(first_word))):
            return None
        pos += BLOCK
        for k in range(0, BLOCK, 80):
            if block[k : k + 8] == b"END     " and not block[k + 3 : k + 80].strip():
                return cards, pos, header_bytes
            cards.append(block[k : k + 80])


def structure_problem(source: _Bytes | FileSource) -> str | None:
    """The first `header_problem` of the file's headers, read block by block (at most MAX_HEADER_BYTES) and
    stepped over their data units by `data_bytes` (Python ints); None when there is none or the headers
    cannot be walked this way (astropy then says what is wrong). For files the fast parser hands to astropy,
    before astropy acts on a header's word."""
    pos = header_bytes = index = 0
    while pos < source.size:
        found = _header_at(source, pos, header_bytes, b"XTENSION" if index else b"SIMPLE")
        if found is None:
            return None
        cards, pos, header_bytes = found
        header = FastHeader(cards)
        problem = header_problem(header, index)
        if problem:
            return problem
        try:
            pos += -(-data_bytes(header) // BLOCK) * BLOCK
        except Exception:  # noqa: BLE001 - any unreadable value: astropy's own verdict stands
            return None
        index += 1
    return None


def truncation(source: _Bytes | FileSource) -> str | None:
    """Why the file is short of what its headers announce, from the headers alone (block by block, sizes in
    Python ints), as `fitsio.check_complete` says it; None when it is not, or its headers cannot be read
    this way. For files astropy cannot open (it says only "Empty or corrupt FITS file" of a header that
    announces 2**66 bytes)."""
    pos = header_bytes = index = 0
    while pos < source.size:
        found = _header_at(source, pos, header_bytes)
        if found is None:
            return None
        cards, pos, header_bytes = found
        try:
            end = pos + -(-data_bytes(FastHeader(cards)) // BLOCK) * BLOCK
        except Exception:  # noqa: BLE001 - any unreadable value: astropy's own verdict stands
            return None
        if end > source.size:
            return f"truncated: HDU {index} ends at byte {end}, the file has {source.size}"
        pos, index = end, index + 1
        if pos >= source.size or not source.read(pos, 8).strip(b"\0 "):
            break
    return None


def _parse(source: _Bytes | FileSource) -> FastHDUList | None:  # noqa: C901 - one pass over the HDUs, each refusal a branch: split, the header bytes would be reread
    hdus: list[_FastHDU] = []
    pos = header_bytes = 0
    size = source.size
    while pos < size:
        hdr_loc = pos
        cards: list[bytes] = []
        ended = False
        while not ended:
            block = source.read(pos, BLOCK)
            if len(block) < BLOCK or block.translate(None, _PRINTABLE):
                return None  # short, or not printable ASCII: astropy says what is wrong
            header_bytes += BLOCK
            if header_bytes > MAX_HEADER_BYTES:  # open_fits names the file (and a missing END card)
                raise ValueError(f"its headers run past {MAX_HEADER_BYTES} bytes")
            pos += BLOCK
            for k in range(0, BLOCK, 80):
                card = block[k : k + 80]
                if card.startswith(b"END     ") and not card[3:].strip():
                    ended = True
                    break
                if card.startswith(b"CONTINUE"):
                    return None
                cards.append(card)
        header = FastHeader(cards)
        first = _keyword(cards[0]) if cards else ""
        primary = not hdus
        if primary and first != "SIMPLE":
            return None
        xtension = str(header.get("XTENSION", "")).strip() if first == "XTENSION" else ""
        if not primary and xtension not in ("IMAGE", "BINTABLE"):
            return None  # an ASCII table or anything else: astropy
        if any(k in header for k in ("BSCALE", "BZERO", "BLANK", "GROUPS")):
            return None
        try:
            bitpix, naxis = int(header["BITPIX"]), int(header["NAXIS"])
            axes = [int(header[f"NAXIS{j}"]) for j in range(1, naxis + 1)]
        except (KeyError, ValueError, TypeError):
            return None
        if bitpix not in _BITPIX or naxis < 0 or any(a < 0 for a in axes):
            return None
        try:
            span = data_bytes(header)  # Python ints: checked against the file's size before anything is read
        except ValueError:
            return None
        padded = -(-span // BLOCK) * BLOCK
        if xtension == "BINTABLE":
            table = _table_layout(header) if bitpix == 8 and naxis == 2 else None
            if table is None:
                return None
            hdus.append(FastTableHDU(header, source, hdr_loc, pos, padded, table[0], table[1], axes[1]))
        else:
            shape = tuple(reversed(axes)) if naxis else ()
            hdus.append(FastImageHDU(header, source, hdr_loc, pos, padded, shape, _BITPIX[bitpix], primary))
        if pos + span > size:
            return FastHDUList(hdus, source)  # truncated: verify_file names it from fileinfo
        pos += padded
        if pos >= size or not source.read(pos, 8).strip(b"\0 "):
            break
    return FastHDUList(hdus, source) if hdus else None
