"""FITS header projection into metadata/h{hdu}_{keyword} and canonical per-spectrum fields.

Works on plain (keyword, value) pairs so it is testable without astropy."""

from __future__ import annotations

import fnmatch
import functools
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import InputError

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


_MEMO_MAX = 1 << 16


@functools.lru_cache(maxsize=_MEMO_MAX)
def sanitize_keyword(keyword: str) -> str:
    """Spec naming: lowercase, non-alphanumerics to '_', runs collapsed, leading/trailing '_' stripped."""
    return _NON_ALNUM.sub("_", keyword.lower()).strip("_")


@dataclass(frozen=True)
class HeaderRules:
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    source: str = "built-in"

    def keeps(self, keyword: str) -> bool:
        kept = self._kept.get(keyword)
        if kept is None:
            kept = _keeps(self.include, self.exclude, keyword.upper())
            if len(self._kept) < _MEMO_MAX:
                self._kept[keyword] = kept
        return kept

    @functools.cached_property
    def _kept(self) -> dict[str, bool]:
        """keeps() by keyword, in this object: _keeps's cache hashes both pattern tuples on every call."""
        return {}


def _glob_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p.upper()) for p in patterns) or "(?!)")


@functools.lru_cache(maxsize=65536)
def _keeps(include: tuple[str, ...], exclude: tuple[str, ...], keyword: str) -> bool:
    """Cached per keyword: a survey repeats the same few hundred keywords in every file."""
    if _compiled(exclude).match(keyword):
        return False
    return _compiled(include).match(keyword) is not None


@functools.lru_cache(maxsize=64)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return _glob_regex(patterns)


def load_header_rules(path: str | Path | None = None) -> HeaderRules:
    """The built-in rule set, or the user's TOML file with `include` and `exclude` lists of globs."""
    if path is None:
        text = resources.files("shardmerge").joinpath("data/header_rules.toml").read_text("utf-8")
        source = "built-in"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise InputError(f"--header-rules {path}: cannot read it ({exc.strerror})") from exc
        source = str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"header rules {source}: not valid TOML ({exc})") from exc
    include, exclude = doc.get("include"), doc.get("exclude", [])
    if not isinstance(include, list) or not all(isinstance(p, str) for p in include):
        raise InputError(f"header rules {source}: 'include' must be a list of glob strings")
    if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
        raise InputError(f"header rules {source}: 'exclude' must be a list of glob strings")
    return HeaderRules(tuple(include), tuple(exclude), source)


def format_value(value: object) -> str:
    """A card value as the UTF-8 string stored in metadata (FITS spelling for booleans)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "T" if value else "F"
    if type(value).__name__ == "Undefined":  # astropy's placeholder for a card with no value
        return ""
    return str(value).strip() if isinstance(value, str) else str(value)


def project_header(cards: Iterable[tuple[str, object]], hdu_index: int, rules: HeaderRules) -> dict[str, str]:
    """Project one HDU's cards. Duplicates (same sanitized name in one HDU) get suffixes _2, _3, …"""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for keyword, value in cards:
        if not keyword or not rules.keeps(keyword):
            continue
        base = f"h{hdu_index}_{sanitize_keyword(keyword)}"
        n = seen.get(base, 0) + 1
        seen[base] = n
        out[base if n == 1 else f"{base}_{n}"] = format_value(value)
    return out


# ---- canonical fields -------------------------------------------------------------------------------

def _first(header: Mapping[str, object], keys: Iterable[str]) -> object | None:
    for k in keys:
        v = header.get(k)
        if v is not None and format_value(v) != "":
            return v
    return None


def parse_angle(value: object, *, hours: bool) -> float:
    """Degrees from a number or a sexagesimal string ('12:34:56.7' or '12 34 56.7'); NaN when absent.

    A sexagesimal right ascension is in hours; a plain number is taken as degrees."""
    if value is None:
        return math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if not text:
        return math.nan
    parts = re.split(r"[:\s hdms°'\"]+", text)
    parts = [p for p in parts if p]
    try:
        if len(parts) == 1:
            return float(parts[0])
        sign = -1.0 if parts[0].startswith("-") else 1.0
        nums = [abs(float(p)) for p in parts[:3]]
    except ValueError:
        return math.nan
    while len(nums) < 3:
        nums.append(0.0)
    deg = sign * (nums[0] + nums[1] / 60.0 + nums[2] / 3600.0)
    return deg * 15.0 if hours else deg


def _as_float(value: object) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


CANONICAL_STRING_FIELDS = ("object", "date_obs", "instrument", "telescope")
CANONICAL_FLOAT_FIELDS = ("ra", "dec", "mjd", "exptime", "airmass")


def canonical_fields(header: Mapping[str, object]) -> dict[str, object]:
    """Canonical observing fields from a merged header mapping (primary first, then the data HDU)."""
    ra_raw = _first(header, ("PLUG_RA", "RA_OBJ", "OBJRA", "RA", "RADEG", "ESO TEL TARG ALPHA"))
    dec_raw = _first(header, ("PLUG_DEC", "DEC_OBJ", "OBJDEC", "DEC", "DECDEG", "ESO TEL TARG DELTA"))
    airmass = _as_float(_first(header, ("AIRMASS",)))
    if math.isnan(airmass):
        start = _as_float(header.get("ESO TEL AIRM START"))
        end = _as_float(header.get("ESO TEL AIRM END"))
        airmass = (start + end) / 2.0 if not (math.isnan(start) or math.isnan(end)) else start
    mjd = _as_float(_first(header, ("MJD-OBS", "MJD")))
    return {
        "object": format_value(_first(header, ("OBJECT", "OBJNAME", "ESO OBS TARG NAME"))),
        "ra": parse_angle(ra_raw, hours=isinstance(ra_raw, str)),
        "dec": parse_angle(dec_raw, hours=False),
        "date_obs": format_value(_first(header, ("DATE-OBS", "DATE-BEG"))),
        "mjd": mjd,
        "exptime": _as_float(_first(header, ("EXPTIME", "EXPOSURE", "TEXPTIME"))),
        "airmass": airmass,
        "instrument": format_value(_first(header, ("INSTRUME",))),
        "telescope": format_value(_first(header, ("TELESCOP",))),
    }
