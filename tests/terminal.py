"""What a terminal shows for captured output: enough of one (carriage return, line feed, the cursor moves
and erases tqdm and click use) to tell a log line on its own line from one written into a bar."""

from __future__ import annotations

import re

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d shardmerge (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S")


def screen(raw: str) -> list[str]:
    """The lines on the screen once `raw` is written to it (no scrolling limit, trailing blanks dropped)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\x1b":
            m = CSI.match(raw, i)
            if m is None:
                i += 1
                continue
            arg, code = m.group(1), m.group(2)
            n = int(arg) if arg.isdigit() else 1
            if code == "A":
                row = max(0, row - n)
            elif code == "B":
                row += n
            elif code == "G":
                col = n - 1
            elif code == "K":
                while len(lines) <= row:
                    lines.append([])
                if arg in ("", "0"):
                    del lines[row][col:]
                else:
                    lines[row] = [] if arg == "2" else [" "] * col + lines[row][col:]
            i = m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
        elif ch == "\b":
            col = max(0, col - 1)
        else:
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            if len(line) < col:
                line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        while len(lines) <= row:
            lines.append([])
        i += 1
    return ["".join(line).rstrip() for line in lines]


def frames(raw: str) -> list[str]:
    """Every piece of text drawn between two carriage returns or line feeds, escape codes removed: each
    state a bar was drawn in."""
    return [f for f in re.split(r"[\r\n]", CSI.sub("", raw)) if f.strip()]


def misplaced_log_lines(lines: list[str]) -> list[str]:
    """Screen lines that hold a log line's text anywhere but at column 0 of a line of its own."""
    return [line for line in lines if " shardmerge " in line and not LOG_LINE.match(line)
            or LOG_LINE.match(line) and "%|" in line]
