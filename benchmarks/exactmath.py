"""The price of CPU-independent wavelengths: `shardmerge.exactmath.exp10` against numpy's `10.0**x`.

numpy's `10.0**x` is whatever SIMD kernel its CPU dispatch picks (SVML on AVX-512), fast but different in
the last bit from one CPU to another; `exp10` is double-double arithmetic from IEEE basic operations, the
correctly rounded value on every CPU. Both on the same arrays, interleaved, the median of --repeats rounds
of --number calls each: a log-linear grid of one spectrum (4600 pixels, an SDSS coadd's loglam) and 10^6
values. The physical yardstick: astropy spends ~0.8 ms opening and parsing one small FITS file.

    python benchmarks/exactmath.py --out benchmarks/results/exactmath_2core
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from shardmerge.exactmath import exp10


def per_call_us(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    cases = {"grid of 4600 px": (3.5578 + 1e-4 * np.arange(4600), 300),
             "10^6 values": (np.random.default_rng(0).uniform(2.5, 6.0, 10**6), 3)}
    rows = []
    for name, (x, number) in cases.items():
        assert exp10(x).shape == x.shape  # warm: the 2**(j/N) table and the workspace
        numpy_us, pinned_us = [], []
        for _ in range(args.repeats):  # interleaved: the machine's noise falls on both alike
            numpy_us.append(per_call_us(lambda x=x: 10.0**x, number))
            pinned_us.append(per_call_us(lambda x=x: exp10(x), number))
        a, b = statistics.median(numpy_us), statistics.median(pinned_us)
        rows.append({"case": name, "n": int(x.size), "numpy_pow_us": round(a, 1), "exp10_us": round(b, 1),
                     "ratio": round(b / a, 2), "exp10_ns_per_value": round(b * 1e3 / x.size, 2)})
    lines = [f"median of {args.repeats}, interleaved; numpy {np.__version__}",
             f"{'case':18} {'10.0**x us':>11} {'exp10 us':>9} {'ratio':>6} {'ns/value':>9}"]
    lines += [f"{r['case']:18} {r['numpy_pow_us']:11.1f} {r['exp10_us']:9.1f} {r['ratio']:6.2f} "
              f"{r['exp10_ns_per_value']:9.2f}" for r in rows]
    print("\n".join(lines))
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2) + "\n")
        args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
