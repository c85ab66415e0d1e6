"""Which files the shard tasks found damaged: named by a task, or, for a file split between shards, judged
here from the parts of its sums that its shards recorded (readers/splitsums.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..errors import BadFileError, BadFilesError
from ..readers.splitsums import covers_file, judge_split_file


def damaged_files(results: Sequence, strict: frozenset[str]) -> dict[str, str]:
    """{path: reason} of every file a round of shard tasks found damaged: named by a task that raised, or a
    split file whose parts do not add up (judged once no task failed: a failed one may hold its part)."""
    bad = dict(_named(results))
    bad.update(split_file_damage([r for r in results if isinstance(r, dict)], strict, all_written=not bad))
    return bad


def split_file_damage(manifests: Sequence[dict], strict: frozenset[str], all_written: bool = True
                      ) -> dict[str, str]:
    """The files split between shards, verified from the parts of their sums that their shards recorded
    (`splitsums`): each damaged one, with its reason. A file's accepted oddities join the notes of the
    manifest holding its first spectra, as a whole read's would. With every shard written (`all_written`),
    a file not covered by its shards' parts (shards an earlier version wrote, which verified it whole
    instead) is read and verified here; else it waits for the round that writes its missing shards."""
    parts: dict[str, list[dict]] = {}
    holder: dict[str, dict] = {}
    for m in manifests:
        for path, entry in m.get("split_sums", {}).items():
            parts.setdefault(path, []).append(entry)
            if entry["first"] == 0 or path not in holder:
                holder[path] = m
    bad = {}
    for path, entries in sorted(parts.items()):
        if covers_file(entries):
            reason, notes = judge_split_file(path, entries, strict)
        elif all_written:
            reason, notes = _verified_whole(path, strict)
        else:
            continue
        if reason:
            bad[path] = reason
        elif notes:
            kept = holder[path].setdefault("notes", {}).setdefault(path, [])
            kept += [n for n in notes if n not in kept]
    return bad


def _verified_whole(path: str, strict: frozenset[str]) -> tuple[str | None, list[str]]:
    from ..readers.fitsio import whole_file_verdict  # astropy: imported by this process only when needed

    return whole_file_verdict(path, strict)


def _named(results: Sequence) -> Iterator[tuple[str, str]]:
    for r in results:
        if isinstance(r, BadFileError):
            yield r.path, r.reason
        elif isinstance(r, BadFilesError):
            yield from r.bad
