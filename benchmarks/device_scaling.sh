#!/usr/bin/env bash
# Issue 13's 16-core table on a lent device machine (16 cores, Python 3.12, no network), as one prepared
# command of about 7 minutes. That machine lacks dask, zarr, astropy and their kin: they travel as wheels.
#
#   here, once:   bash benchmarks/device_scaling.sh fetch      (wheels into .whl/, which git ignores)
#   there:        device run, carry [".whl"], command: bash benchmarks/device_scaling.sh run
#                 -> $OUT/scaling_16core.txt, .json and .log; commit them under benchmarks/results/
#                 and $OUT/profile_16workers.txt: py-spy's collapsed stacks of one --workers N run (all
#                 processes), for finding where the many-core time goes
#   or:           bash benchmarks/device_scaling.sh profile: the corpus and the profile only (~1.5 minutes)
#   or:           bash benchmarks/device_scaling.sh merge-writer: benchmarks/merge_writer.py on the corpus
#
# A short ingest runs first, bounded: if the stack does not work there, the run stops within two minutes
# instead of spending the lease.
# SPECTRA (46000, the issue's corpus size) and REPEATS (2) size the run; WORKERS (say "1 16": the
# variants the targets name) narrows the worker counts from 1, 2, 4, ... up to the cores; PROFILE=0 skips
# the profile; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# the versions this project is tested with here; the machine already has numpy, pyarrow, click and the rest
WHEELS=(dask==2026.8.0 distributed==2026.8.0 dask-jobqueue==0.9.0 zarr==3.1.6 numcodecs==0.16.6
        astropy==8.0.2 astropy-iers-data==0.2026.11.2.0.34.55 pyerfa==2.0.1.5 tornado==6.6.1 tblib==3.2.2
        zict==3.0.0 partd==1.4.2 locket==1.0.0 donfig==0.8.1.post1 google-crc32c==1.9.0 py-spy==0.4.3)
case "${1:-}" in
  fetch)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
             manylinux1_x86_64; do platforms+=(--platform "$p"); done
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" -d .whl "${WHEELS[@]}"
    du -sh .whl
    ;;
  run|profile|merge-writer)
    out="${OUT:-/tmp/shardmerge-device-out}"
    mkdir -p "$out"
    if [ -d .whl ]; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
      # bytecode, as any installed package has: without it every process (the forkserver, each -B worker)
      # compiles dask, distributed, zarr and astropy from source, which was ~60% of the 16-core cluster start
      "$PY" -m compileall -q -j 0 /tmp/site >/dev/null
      export PYTHONPATH="/tmp/site:$PWD"
    else
      export PYTHONPATH="$PWD"  # the packages are installed already (a test of this script elsewhere)
    fi
    export PYTHONUNBUFFERED=1
    "$PY" -m compileall -q shardmerge benchmarks >/dev/null
    log="$out/scaling_16core.log"
    nproc | sed 's/^/cores: /' | tee "$log"
    "$PY" -c 'import sys, numpy, dask, zarr, astropy; print(sys.version.split()[0], "numpy", numpy.__version__,
      "dask", dask.__version__, "zarr", zarr.__version__, "astropy", astropy.__version__)' 2>&1 | tee -a "$log"
    smoke=/tmp/shardmerge-smoke
    rm -rf "$smoke"
    "$PY" scripts/make_sample_corpus.py "$smoke/corpus" >/dev/null
    timeout 120 "$PY" -m shardmerge ingest "$smoke/corpus" -o "$smoke/out.zarr" --workers 2 --quiet 2>&1 \
      | tee -a "$log"
    echo "smoke ingest: published" | tee -a "$log"
    corpus=/tmp/shardmerge-corpus  # kept after the table for the profile
    n="$(nproc)"
    rm -rf /tmp/shardmerge-warm.zarr /tmp/shardmerge-profiled.zarr  # an earlier run's on this machine
    if [ "$1" = merge-writer ]; then  # the one merge writer's ceiling against 16 cores' shard tasks
      "$PY" -c "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks'); import scaling;
print(scaling.make_corpus(Path('$corpus'), ${SPECTRA:-46000}, 2000))" | tee -a "$log"
      timeout 300 "$PY" benchmarks/merge_writer.py --corpus "$corpus" --repeats "${REPEATS:-3}" \
        --out "$out/merge_writer_16core" 2>&1 | tee -a "$log"
      exit 0
    fi
    if [ "$1" = profile ]; then  # the profile alone: the corpus, one ingest to warm the page cache, then it
      "$PY" -c "import sys; from pathlib import Path; sys.path.insert(0, 'benchmarks'); import scaling;
print(scaling.make_corpus(Path('$corpus'), ${SPECTRA:-46000}, 2000))" | tee -a "$log"
      timeout 120 "$PY" -m shardmerge ingest "$corpus" -o /tmp/shardmerge-warm.zarr --workers "$n" --quiet \
        --report "$out/warm_${n}workers_report.json" 2>&1 | tee -a "$log"
    else
      # shellcheck disable=SC2086  # WORKERS is a list of numbers
      "$PY" benchmarks/scaling.py --spectra "${SPECTRA:-46000}" --repeats "${REPEATS:-2}" --corpus "$corpus" \
        ${WORKERS:+--workers $WORKERS} --out "$out/scaling_16core" 2>&1 | tee -a "$log"
    fi
    spy="$(command -v py-spy || echo /tmp/site/bin/py-spy)"
    if [ "${PROFILE:-1}" = 1 ] && [ -x "$spy" ]; then
      # a profile is a bonus: its failure (no ptrace in a container, say) must not fail the table's run
      # profile mode samples idle threads too: the driver's main thread, waiting or not, is the critical path
      idle=()
      if [ "$1" = profile ]; then idle=(--idle); fi
      timeout 120 "$spy" record --subprocesses "${idle[@]}" --rate 100 --format raw -o "$out/profile_${n}workers.txt" -- \
        "$PY" -m shardmerge ingest "$corpus" -o /tmp/shardmerge-profiled.zarr --workers "$n" --quiet \
        --report "$out/profile_${n}workers_report.json" 2>&1 | tail -5 | tee -a "$log" || true
    fi
    ;;
  *)
    echo "usage: bash benchmarks/device_scaling.sh fetch|run|profile|merge-writer" >&2
    exit 2
    ;;
esac
