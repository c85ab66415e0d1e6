"""A store's fingerprint, to prove a refactor writes the same stores: per array, a digest of its decoded
values (exact bits) and of its chunk files (compressed bytes), plus attributes and index.parquet's values.
Paths under the corpus root are written relative, so the fingerprint does not depend on where the corpus
lives; what changes run to run (created_at, git_commit, command_line) is left out.

Chunk-file digests depend on the compressor's build as well as on shardmerge: they are compared only when
numcodecs and Blosc have the versions recorded with them. Decoded values are always compared.

Record anew (only when a store change is intended, and say so in the commit):
    python -m tests.fingerprint record

A store must not depend on the CPU that wrote it: the test ingests each corpus twice, once as it is and
once in a child process with numpy's CPU dispatch limited to its baseline (`baseline_only_env`), and
both must give the recorded fingerprint. The recording may be made on any machine."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

RECORDED = Path(__file__).parent / "data" / "store_fingerprints.json"
# input_bytes: gzip'd synthetic inputs differ by a byte or two run to run (their headers hold a timestamp)
VOLATILE_ATTRS = {"created_at", "git_commit", "command_line", "ingest_pipeline", "input_bytes", "store_id"}


def codec_versions() -> dict[str, str]:
    import numcodecs
    from numcodecs import blosc

    return {"numcodecs": numcodecs.__version__, "blosc": str(getattr(blosc, "VERSION_STRING", ""))}


def _relative(text: str, root: str) -> str:
    return text.replace(root, "<root>")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def store_fingerprint(store: str | Path, root: str | Path) -> dict:
    import pyarrow.parquet as pq
    import zarr

    store, root = str(store), os.path.realpath(str(root))
    group = zarr.open_group(store, mode="r", use_consolidated=False)
    values: dict[str, str] = {}
    chunks: dict[str, str] = {}
    attrs: dict[str, str] = {}
    with warnings.catch_warnings():  # index.parquet sits in the store beside the hierarchy, as designed
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
        members = sorted(group.members(max_depth=None), key=lambda kv: kv[0])
    for path, node in members:
        a = {k: v for k, v in node.attrs.asdict().items()}
        attrs[path] = _digest(_relative(json.dumps(a, sort_keys=True), root).encode())
        if not isinstance(node, zarr.Array):
            continue
        data = np.asarray(node[...])
        if data.dtype.kind in "OUT":
            text = "\0".join(_relative(str(x), root) for x in data.ravel())
            values[path] = _digest(f"{data.shape}|str|".encode() + text.encode())
        else:
            values[path] = _digest(f"{data.shape}|{data.dtype.str}|".encode() + np.ascontiguousarray(data).tobytes())
            files = sorted(p for p in Path(store, path).rglob("*") if p.is_file() and p.name != "zarr.json")
            h = hashlib.sha256()
            for p in files:
                h.update(str(p.relative_to(Path(store, path))).encode() + b"\0" + p.read_bytes())
            chunks[path] = h.hexdigest()[:24]
    root_attrs = {k: v for k, v in group.attrs.asdict().items() if k not in VOLATILE_ATTRS}
    attrs[""] = _digest(_relative(json.dumps(root_attrs, sort_keys=True), root).encode())
    index = pq.read_table(os.path.join(store, "index.parquet")).to_pylist()
    values["index.parquet"] = _digest(_relative(json.dumps(index, sort_keys=True, default=str), root).encode())
    return {"values": values, "chunks": chunks, "attrs": attrs}


def compare(found: dict, recorded: dict, codec: dict | None = None) -> list[str]:
    """What differs, as lines naming the array; chunk files only when the codec versions the recording
    was made with (`codec`, the recording's top-level "codec") match the ones installed."""
    out = []
    for part in ("values", "attrs") + (("chunks",) if codec == codec_versions() else ()):
        a, b = found[part], recorded[part]
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                out.append(f"{part}: {name}: {a.get(name, 'missing')} != recorded {b.get(name, 'missing')}")
    return out


# ---- the corpora: built here (synthetic) or fetched (real), ingested with --workers 0 ---------------------

def build(name: str, folder: Path) -> Path:
    """Write corpus `name` under folder; return its root."""
    root = folder / name
    if name == "demo":
        from shardmerge.testing.spectra import make_mixed_corpus

        make_mixed_corpus(root, n_wcs1d=24, n_image2d=4, n_sdss=12)  # scripts/make_sample_corpus.py's corpus
    elif name == "surveys":
        from shardmerge.testing.surveys import make_survey_folder

        make_survey_folder(root)
    elif name == "real":
        from tests.realdata.fetch import FILES, fetch

        root.mkdir(parents=True)
        for n in sorted(FILES):  # every pinned real file that ingests (the refusals are tested apart)
            if n not in REFUSED_REAL:
                os.symlink(fetch(n), root / n)
    else:
        raise ValueError(name)
    return root


REFUSED_REAL = {"popler_sample.fits", "NGC4151sic2a.fits", "Spectrum_Variance.fits"}
CORPORA = ("demo", "surveys", "real")


def ingest(root: Path, out: Path) -> None:
    from click.testing import CliRunner

    from shardmerge.cli import main

    r = CliRunner().invoke(main, ["ingest", str(root), "-o", str(out), "--workers", "0", "--quiet"],
                           catch_exceptions=False)
    if r.exit_code != 0:
        raise RuntimeError(r.output)


def enabled_dispatch() -> list[str]:
    """The CPU features numpy dispatches to beyond its baseline that are enabled in this process."""
    from numpy._core import _multiarray_umath as umath

    return sorted(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f))


def baseline_only_env() -> dict[str, str]:
    """os.environ with numpy's CPU dispatch limited to its baseline: every dispatched feature this numpy
    offers disabled (those the CPU lacks too, which numpy accepts; a baseline feature it would refuse).
    Dask workers started by a process with it inherit it (executors/local.py passes the environment)."""
    from numpy._core import _multiarray_umath as umath

    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join([root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    return dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(umath.__cpu_dispatch__), PYTHONPATH=path)


_CHILD = """import json, sys
from pathlib import Path
from tests.fingerprint import enabled_dispatch, ingest
print(json.dumps(enabled_dispatch()))
ingest(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def ingest_baseline_only(root: Path, out: Path, timeout: float = 240) -> list[str]:
    """ingest() in a child process whose numpy dispatches to its baseline only; returns the dispatched
    features the child had enabled (none, when the restriction took effect). numpy reports a name it
    does not accept as an ImportWarning, made an error here."""
    import subprocess

    r = subprocess.run([sys.executable, "-W", "error::ImportWarning", "-c", _CHILD, str(root), str(out)],
                       env=baseline_only_env(), cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"baseline-only ingest failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.splitlines()[0])


def record() -> None:
    import tempfile

    doc = {"codec": codec_versions(), "corpora": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CORPORA:
            root = build(name, Path(tmp))
            ingest(root, Path(tmp) / f"{name}.zarr")
            doc["corpora"][name] = store_fingerprint(Path(tmp) / f"{name}.zarr", root)
    RECORDED.parent.mkdir(exist_ok=True)
    RECORDED.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORDED}")


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    record()
