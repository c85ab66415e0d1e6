"""shardmerge.exactmath: 10**x (and e**x) correctly rounded, checked bit for bit against 60-digit decimal
arithmetic, and the same bits whatever SIMD kernels numpy's CPU dispatch may use."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

from shardmerge.exactmath import exp, exp10, log10_scalar
from tests.fingerprint import baseline_only_env


def _oracle(x: np.ndarray, fn) -> np.ndarray:
    """fn on the exact decimal value of each float at 60 digits, then rounded once to float64."""
    with localcontext() as ctx:
        ctx.prec = 60
        return np.array([float(fn(Decimal(float(v)))) for v in x])


def _ten_to(d: Decimal) -> Decimal:
    return Decimal(10) ** d


def _mismatches(got: np.ndarray, want: np.ndarray, x: np.ndarray) -> tuple[int, list]:
    """How many results differ from the oracle in any bit, and the first few as (x, got, want) in hex."""
    bad = got.view(np.int64) != want.view(np.int64)
    shown = zip(x[bad][:5], got[bad][:5], want[bad][:5], strict=True)
    return int(bad.sum()), [(float(a).hex(), float(g).hex(), float(w).hex()) for a, g, w in shown]


def _domain(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = rng.integers(-1074, 1024, 3000)  # 10**x next to a power of two, where a binade changes
    return {
        "log10 wavelengths (2.5..6)": rng.uniform(2.5, 6.0, 20000),
        "the whole domain": rng.uniform(-330.0, 310.0, 5000),
        "binade edges": np.array([float(v) for v in k * np.log10(2.0)]) + rng.integers(-4, 5, k.size) * 2e-15,
        "subnormal results": rng.uniform(-323.7, -307.0, 2000),
        "near overflow": rng.uniform(307.5, 308.3, 1000),
        "near 0": rng.standard_normal(2000) * 10.0 ** rng.uniform(-18, -2, 2000),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("part", list(_domain(0)))
def test_exp10_is_the_correctly_rounded_value(part):
    x = _domain(0)[part]
    assert _mismatches(exp10(x), _oracle(x, _ten_to), x) == (0, [])


@pytest.mark.timeout(60)
def test_exp_is_the_correctly_rounded_value():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-745.0, 709.7, 4000), rng.uniform(-2.0, 2.0, 4000),
                        -0.5 * (rng.uniform(-30, 30, 2000) / 2.5) ** 2])  # the synthetic line profiles
    assert _mismatches(exp(x), _oracle(x, lambda d: d.exp()), x) == (0, [])


def test_exp10_edges():
    special = exp10(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300]))
    assert np.isnan(special[0]) and list(special[1:]) == [np.inf, 0.0, 1.0, 1.0, np.inf, 0.0]
    # around the largest double (log10 = 308.2547...), the smallest subnormal (-323.306...) and half of it
    # (-323.606..., below which 0), and arguments that are themselves subnormal
    x = np.array([308.2547155599167, 308.25471555991675, 308.2547155599168, 308.26, 309.0, -307.6526555685888,
                  -323.306, -323.3062153431158, -323.606, -323.61, -324.0, 5e-324, -5e-324])
    got = exp10(x)
    assert _mismatches(got, _oracle(x, _ten_to), x) == (0, [])
    assert got[0] < np.inf and got[3] == np.inf and got[7] == 5e-324 and got[9] == 0.0 and got[11] == 1.0


def test_exp10_of_an_integer_is_the_exact_power_of_ten():
    n = np.arange(-345, 311)
    # Python's int and Fraction conversions to float are correctly rounded (to inf past the largest double)
    want = [float(Fraction(10) ** int(k)) if k <= 308 else np.inf for k in n]
    np.testing.assert_array_equal(exp10(n.astype(np.float64)), want)
    assert exp10(np.array([22.0]))[0] == 1e22 and exp10(np.array([-1.0]))[0] == 0.1


def test_exp10_keeps_the_shape_and_accepts_any_real_input():
    assert exp10(np.full((3, 4), 2.0)).shape == (3, 4)
    assert exp10(3.5).shape == () and float(exp10(3.5)) == float(_oracle(np.array([3.5]), _ten_to)[0])
    np.testing.assert_array_equal(exp10(np.float32(3.25) + np.zeros(5, np.float32)),
                                  exp10(np.full(5, float(np.float32(3.25)))))
    assert exp10(np.zeros(0)).shape == (0,)
    big = np.random.default_rng(2).uniform(2.5, 6, 40000)  # more than one of the kernel's blocks
    np.testing.assert_array_equal(exp10(big)[-100:], exp10(big[-100:]))


def test_log10_scalar_is_correctly_rounded():
    for v in (3690.0, 2.0, 1e-300, 12345.678):
        with localcontext() as ctx:
            ctx.prec = 60
            assert log10_scalar(v) == float(Decimal(v).log10())


_CHILD = """import hashlib, json
import numpy as np
from numpy._core import _multiarray_umath as umath
from shardmerge.exactmath import exp, exp10
rng = np.random.default_rng(7)
x = np.concatenate([rng.uniform(2.5, 6, 20000), rng.uniform(-330, 310, 20000)])
e = rng.uniform(-745, 709, 20000)
print(json.dumps({"enabled": sorted(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)),
                  "exp10": hashlib.sha256(exp10(x).tobytes()).hexdigest(),
                  "exp": hashlib.sha256(exp(e).tobytes()).hexdigest(),
                  "numpy_pow": hashlib.sha256((10.0 ** x[:20000]).tobytes()).hexdigest()}))
"""


def _child(env: dict) -> dict:
    r = subprocess.run([sys.executable, "-W", "error::ImportWarning", "-c", _CHILD], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # numpy accepted the restriction without a word
    return json.loads(r.stdout)


@pytest.mark.timeout(120)
def test_the_same_bits_with_numpy_cpu_dispatch_limited_to_its_baseline():
    """Every feature numpy dispatches to beyond its baseline disabled (NPY_DISABLE_CPU_FEATURES) against
    none: the kernels' results hash the same. numpy's own 10**x differs between the two on a machine
    with AVX-512 (SVML), which is why the kernel exists; that is reported, not asserted."""
    restricted_env = baseline_only_env()
    unrestricted_env = {k: v for k, v in restricted_env.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    free, limited = _child(unrestricted_env), _child(restricted_env)
    assert limited["enabled"] == [], f"the restriction did not take effect: {limited['enabled']} enabled"
    assert (limited["exp10"], limited["exp"]) == (free["exp10"], free["exp"]), (
        f"exactmath depends on numpy's CPU dispatch (unrestricted: {free['enabled']})")
    if free["numpy_pow"] != limited["numpy_pow"]:
        print(f"numpy's 10**x differs with {free['enabled']} enabled; exactmath does not")
