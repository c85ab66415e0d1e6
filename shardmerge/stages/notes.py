"""What was odd but accepted, per input file: found by the scan (headers) and by the shard tasks (data)."""

from __future__ import annotations

from collections.abc import Sequence

from ..filetable import FileTable
from ..readers.oddities import kind_of


def input_notes(scans: FileTable, manifests: Sequence[dict] = ()) -> dict[str, list[str]]:
    """Per input path, its oddities: found by the scan, and by the shard tasks that read its data."""
    notes = {scans.path(row): list(n) for row, n in sorted(scans.notes.items())}
    for m in manifests:
        for path, found in m.get("notes", {}).items():
            kept = notes.setdefault(path, [])
            kept.extend(n for n in found if n not in kept)
    return notes


def oddity_provenance(notes: dict[str, list[str]], examples: int = 5) -> dict:
    """For the store's root attrs: per kind, how many files and a few of them (a full list could be
    millions of paths; the run report has it)."""
    out: dict[str, dict] = {}
    for path in sorted(notes):
        for kind in sorted({kind_of(n) for n in notes[path]}):
            entry = out.setdefault(kind, {"files": 0, "examples": []})
            entry["files"] += 1
            if len(entry["examples"]) < examples:
                entry["examples"].append(path)
    return out
