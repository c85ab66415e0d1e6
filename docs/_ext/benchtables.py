"""Tables generated at build time, so that no number or exit code on a docs page is copied by hand.

Three directives:

``benchtable``
    A table from one of ``benchmarks/results/*.json`` (or the header-and-rows text table of a ``*.txt``)::

        ```{benchtable} scaling_2core.json
        :columns: variant=variant; wall_s=wall s; vs_serial=vs serial
        :caption: 2 cores
        ```

    ``:columns:`` picks and names the columns (``key=Header; ...``; a key may be a dotted path into nested
    dicts, e.g. ``phases_s.scan``); without it every scalar field is a column. The rows are the JSON's
    top-level list, its ``rows`` list, or the values of its ``results`` dict. ``:fields:`` instead renders one
    record (the JSON object itself) as a two-column table of the listed keys. A ``.txt`` file is shown as a
    literal block (``:lines: A-B`` narrows it). Every table ends with the file it came from.

``error-tree``
    The classes of :mod:`shardmerge.errors` with their parents, exit codes and first docstring line.

``gate-checks``
    The validation gate's checks, as ``shardmerge.validate.checks_markdown()`` writes them (the table
    ``shardmerge validate --list-checks`` prints): the one list the gate and ``validate`` both run.

A result file that is missing or lacks a named column is an error of the docs build (and so a failure
under ``-W``), never a silently empty table.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _lookup(record: dict, dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def _shown(value: Any) -> str:
    """One cell: ints grouped by thousands, floats to 2 decimals below 10, 1 below 100, none above."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u202f")
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}".replace(",", "\u202f")
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if 0 < abs(value) < 0.01 else f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_shown(v)}" for k, v in value.items())
    return str(value)


def rows_of(data: Any) -> list[dict]:
    """The records of a benchmark's JSON: a top-level list, its ``rows`` list, or its ``results`` values."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if isinstance(data.get("rows"), list):
            return data["rows"]
        if isinstance(data.get("results"), dict):
            return list(data["results"].values())
    raise ValueError("no rows: expected a list, a 'rows' list or a 'results' dict")


def parse_columns(spec: str) -> list[tuple[str, str]]:
    columns = []
    for item in spec.split(";"):
        item = item.strip()
        if not item:
            continue
        key, _, header = item.partition("=")
        columns.append((key.strip(), (header or key).strip()))
    return columns


def table_node(headers: list[str], body: list[list[str | nodes.Node]]) -> nodes.table:
    table = nodes.table(classes=["benchtable"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for _ in headers:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head += _row(headers)
    tbody = nodes.tbody()
    group += tbody
    for cells in body:
        tbody += _row(cells)
    return table


def _row(cells: list[str | nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += cell if isinstance(cell, nodes.Node) else nodes.paragraph(text=cell)
        row += entry
    return row


class BenchTable(SphinxDirective):
    """Render one committed benchmark result as a table (see the module docstring)."""

    required_arguments = 1
    option_spec = {
        "columns": directives.unchanged,
        "fields": directives.unchanged,
        "caption": directives.unchanged,
        "lines": directives.unchanged,
        "where": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        path = RESULTS / self.arguments[0]
        if not path.is_file():
            raise self.error(f"benchtable: {path} does not exist")
        self.env.note_dependency(str(path))
        made = self._from_json(path) if path.suffix == ".json" else self._from_text(path)
        source = nodes.paragraph(classes=["benchtable-source"])
        source += nodes.emphasis(text=f"Generated from benchmarks/results/{path.name}.")
        if "caption" in self.options:
            caption = nodes.paragraph()
            caption += nodes.strong(text=self.options["caption"])
            return [caption, made, source]
        return [made, source]

    def _from_json(self, path: Path) -> nodes.Node:
        data = json.loads(path.read_text())
        try:
            if "fields" in self.options:
                fields = parse_columns(self.options["fields"])
                return table_node(["", "value"], [[header, _shown(_lookup(data, key))] for key, header in fields])
            records = rows_of(data)
            if "where" in self.options:
                key, _, wanted = self.options["where"].partition("=")
                records = [r for r in records if str(_lookup(r, key.strip())) == wanted.strip()]
            if "columns" in self.options:
                columns = parse_columns(self.options["columns"])
            else:
                columns = [(k, k) for k, v in records[0].items() if not isinstance(v, (dict, list))]
            body = [[_shown(_lookup(r, key)) for key, _ in columns] for r in records]
        except (KeyError, ValueError) as exc:
            raise self.error(f"benchtable {path.name}: {exc}") from None
        return table_node([header for _, header in columns], body)

    def _from_text(self, path: Path) -> nodes.Node:
        lines = path.read_text().splitlines()
        if "lines" in self.options:
            first, _, last = self.options["lines"].partition("-")
            lines = lines[int(first) - 1 : int(last or first)]
        text = "\n".join(lines).strip("\n")
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return block


class ErrorTree(SphinxDirective):
    """Every ShardmergeError subclass: its parent, its exit code and what it means."""

    def run(self) -> list[nodes.Node]:
        from shardmerge import errors

        classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
                   if issubclass(c, errors.ShardmergeError) and c.__module__ == errors.__name__]

        def depth(cls: type) -> int:
            return cls.__mro__.index(errors.ShardmergeError)

        def chain(cls: type) -> list[str]:
            return [c.__name__ for c in reversed(cls.__mro__[: depth(cls) + 1])]

        classes.sort(key=chain)
        body = []
        for cls in classes:
            doc = inspect.getdoc(cls) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            name = "\u2003" * depth(cls) + cls.__name__
            parent = cls.__mro__[1].__name__ if cls is not errors.ShardmergeError else "Exception"
            body.append([name, parent, str(cls.exit_code), _cell(first)])
        return [table_node(["exception", "parent", "exit code", "meaning"], body)]


def _cell(text: str) -> nodes.paragraph:
    """One Markdown table cell: plain text with `inline code` spans."""
    cell = nodes.paragraph()
    for i, part in enumerate(text.split("`")):
        if part:
            cell += nodes.literal(part, part) if i % 2 else nodes.Text(part)
    return cell


def markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of a simple Markdown table (no `|` inside cells), its separator line dropped."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    if len(rows) < 2 or not all(set(c) <= set("-: ") for c in rows[1]):
        raise ValueError("not a Markdown table: no header separator on its second line")
    if any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("a row of the Markdown table has a different number of cells than its header")
    return rows[0], rows[2:]


class GateChecks(SphinxDirective):
    """Every check of shardmerge.validate.CHECKS, from checks_markdown(): never a hand-kept copy."""

    def run(self) -> list[nodes.Node]:
        from shardmerge import validate

        self.env.note_dependency(validate.__file__)
        try:
            headers, body = markdown_table(validate.checks_markdown())
        except ValueError as exc:
            raise self.error(f"gate-checks: validate.checks_markdown(): {exc}") from None
        table = table_node(headers, [[_cell(text) for text in row] for row in body])
        table["classes"].append("gate-checks")
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("benchtable", BenchTable)
    app.add_directive("error-tree", ErrorTree)
    app.add_directive("gate-checks", GateChecks)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
