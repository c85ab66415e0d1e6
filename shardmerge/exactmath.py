"""Transcendental functions whose float64 results do not depend on the CPU.

numpy dispatches `10.0**x`, `np.exp`, `np.log10` ... to SIMD kernels chosen at run time (SVML on AVX-512,
others on AVX2, NEON, or the C library's `pow`), and those round differently in the last bit for a few
percent of arguments. A stored value derived with them would then depend on the node that wrote its shard.
The kernels here use only IEEE basic operations (+ - * /), each a separate numpy ufunc, so every x86-64
and aarch64 CPU returns the same bits; products are made exact with Dekker's splitting (no FMA is assumed
or needed), and the result is carried in double-double (about 2^-100 relative error) before one final
rounding, so it is also the correctly rounded value in all but astronomically rare cases.

Method (b**x for b = 10 or e): x = m*log_b(2)/N + r with N = 4096, m an integer (Cody-Waite reduction in
four exact pieces); b**x = 2**(m // N) * 2**((m % N)/N) * exp(r ln b), with the 2**(j/N) table computed
once, lazily, in exact decimal arithmetic, and exp of |z| < 2^-13.5 by Taylor series in double-double."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import cache

import numpy as np

_N_BITS = 12
_N = 1 << _N_BITS  # table size: 2**(j/N), j = 0..N-1
_SPLITTER = 134217729.0  # 2**27 + 1, Veltkamp's splitting constant for float64
_X_MAX = 310.0  # 10**x overflows from 308.2547...; past this, inf without computing
_X_MIN = -345.0  # 10**x underflows to 0 below -323.6...; below this, 0 without computing
_INT_MIN, _INT_MAX = -345, 310  # integral x here: a table of the correctly rounded 10**n
_BLOCK = 16384  # values per pass of the kernel


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a = hi + lo exactly, each with at most 26 significant bits (Veltkamp)."""
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: np.ndarray, b_split: tuple, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """p + e = a*b exactly (Dekker), b given with its split."""
    bh, bl = b_split
    p = a * b
    ah, al = _split(a)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s + e = a + b exactly (Knuth), whatever their magnitudes."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s + e = a + b exactly when |a| >= |b| (Dekker)."""
    s = a + b
    return s, b - (s - a)


def _dd(value: Decimal) -> tuple[float, float]:
    hi = float(value)
    return hi, float(value - Decimal(hi))


def _pieces(value: Decimal, bits: int, count: int) -> list[float]:
    """value as count floats of `bits` significant bits each (the last one full), summing to it within
    the last one's rounding: m * piece is exact for |m| < 2**(53 - bits)."""
    out = []
    for _ in range(count - 1):
        mant, exp = math.frexp(float(value))
        piece = math.ldexp(round(mant * (1 << bits)), exp - bits)
        out.append(piece)
        value -= Decimal(piece)
    out.append(float(value))
    return out


@cache
def _constants(base: str) -> dict:
    """Reduction and scaling constants for base 10 or e, from 60-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 60
        ln2 = Decimal(2).ln()
        ln_b = Decimal(10).ln() if base == "10" else Decimal(1)
        log_b_2 = ln2 / ln_b
        step = log_b_2 / _N  # x = m*step + r
        ln_b_hi, ln_b_lo = _dd(ln_b)
        # |m| < 2**23 for |x| <= 345 in base 10 (and for the exp domain): 30-bit pieces make m*piece exact
        return {
            "inv_step": float(1 / step),
            "step": _pieces(step, 30, 4),
            "ln_b": (ln_b_hi, ln_b_lo, _split(np.float64(ln_b_hi))),
            "unit": base == "e",  # ln e = 1: r needs no product
        }


@cache
def _table() -> tuple[np.ndarray, np.ndarray]:
    """2**(j/N) for j = 0..N-1 as double-double (hi, lo), by repeated multiplication at 60 digits
    (the error after N steps is below 1e-55, far under the 2^-106 a double-double holds)."""
    hi, lo = np.empty(_N), np.empty(_N)
    with localcontext() as ctx:
        ctx.prec = 60
        root = Decimal(2) ** (Decimal(1) / _N)
        v = Decimal(1)
        for j in range(_N):
            hi[j], lo[j] = _dd(v)
            v *= root
    return hi, lo


@cache
def _powers_of_ten() -> np.ndarray:
    """10**n correctly rounded for n = _INT_MIN.._INT_MAX (Python's int and Fraction conversions round
    correctly, subnormals and overflow to inf included)."""
    out = np.empty(_INT_MAX - _INT_MIN + 1)
    for i, n in enumerate(range(_INT_MIN, _INT_MAX + 1)):
        try:
            out[i] = float(10**n) if n >= 0 else float(Fraction(1, 10**-n))
        except OverflowError:
            out[i] = math.inf
    return out


def _exp_core(x: np.ndarray, base: str) -> np.ndarray:
    """base**x for finite x in the clipped domain, as the correctly rounded double (see the module)."""
    c = _constants(base)
    t_hi, t_lo = _table()
    m = np.rint(x * c["inv_step"])  # any nearby integer would do: only |r| < step/2 (a little more) matters
    s1, s2, s3, s4 = c["step"]
    # r = x - m*step, exactly to ~2^-120: m*s1, m*s2, m*s3 are exact and x - m*s1 is exact (Cody-Waite)
    a = x - m * s1
    rh, rl = _two_sum(a, -(m * s2))
    rh, e2 = _two_sum(rh, -(m * s3))
    rl = (rl + e2) - m * s4
    # z = r * ln(b) in double-double
    if c["unit"]:
        zh, zl = _fast_two_sum(rh, rl)
    else:
        l_hi, l_lo, l_split = c["ln_b"]
        zh, zl = _two_prod(rh, l_split, l_hi)
        zl = zl + (rh * l_lo + rl * l_hi)
    # q = exp(z) - 1, |zh| < 2^-13.5. exp(zh + zl) = exp(zh) * (1 + zl + ...): zl * (1 + zh + zh^2/2) is
    # below 2^-66; zh^2 is exact in double-double; zh^3/6 (about 2^-43) needs its own double-double;
    # zh^4/24 ... zh^7/5040 (below 2^-58) are summed in double
    zs = _split(zh)
    sh = zh * zh
    sl = ((zs[0] * zs[0] - sh) + 2.0 * (zs[0] * zs[1])) + zs[1] * zs[1]
    ch, cl = _two_prod(sh, zs, zh)  # zh^3
    cl = cl + sl * zh
    q3 = ch / 6.0  # (ch + cl)/6 in double-double: ch - 6*q3 is exact (a correctly rounded quotient's
    u, ue = _two_sum(4.0 * q3, 2.0 * q3)  # remainder is representable); 6*q3 = 4*q3 + 2*q3 exactly
    q3l = (((ch - u) - ue) + cl) / 6.0
    tail = sh * sh * ((1.0 / 24.0) + zh * ((1.0 / 120.0) + zh * ((1.0 / 720.0) + zh * (1.0 / 5040.0))))
    qh, ql = _fast_two_sum(zh, 0.5 * sh)
    qh, e = _fast_two_sum(qh, q3)
    ql = ql + e + (0.5 * sl + q3l + tail + zl * (1.0 + zh + 0.5 * sh))
    # 2**(j/N) * (1 + q) = T + T*q
    k = np.floor(m * (1.0 / _N))
    j = (m - k * _N).astype(np.intp)
    th, tl = t_hi[j], t_lo[j]
    ph, pl = _two_prod(th, _split(qh), qh)
    pl = pl + (th * ql + tl * qh)
    hi, lo = _fast_two_sum(th, ph)
    lo = lo + (pl + tl)
    ki = k.astype(np.int32)
    out = np.ldexp(hi + lo, ki)  # one rounding of hi + lo; scaling by 2**k is exact for normal results
    # a subnormal result (hi + lo may be just under 1 at k = -1022): round hi + lo once, at its precision
    sub = ki <= -1022
    if sub.any():
        shift = (ki[sub] + 1074).astype(np.int32)
        t = np.ldexp(hi[sub], shift)  # exact: hi*2**shift and lo*2**shift are normal or zero
        n0 = np.rint(t)
        n = n0 + np.rint((t - n0) + np.ldexp(lo[sub], shift))
        out[sub] = np.ldexp(n, -1074)  # exact: an integer times the smallest subnormal
    return out


def _blocked(x: np.ndarray, base: str) -> np.ndarray:
    """_exp_core over blocks that keep its ~30 temporaries in cache (3-4x faster on 10**6 values)."""
    if x.size <= _BLOCK:
        return _exp_core(x, base)
    out = np.empty_like(x)
    for i in range(0, x.size, _BLOCK):
        out[i : i + _BLOCK] = _exp_core(x[i : i + _BLOCK], base)
    return out


def _pinned(x, base: str, lo: float, hi: float, integral_table: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    x = x.ravel()
    with np.errstate(all="ignore"):  # overflow to inf and underflow to 0 are results here, not accidents
        finite = (x >= lo) & (x <= hi)
        if finite.all():
            out = _blocked(x, base)
        else:
            out = np.empty_like(x)
            out[finite] = _blocked(x[finite], base)
            out[x > hi] = np.inf
            out[x < lo] = 0.0
            out[np.isnan(x)] = np.nan
        if integral_table:  # exact powers of ten, and 10**0 = 1 for -0.0 too
            whole = finite & (x == np.floor(x))
            if whole.any():
                out[whole] = _powers_of_ten()[x[whole].astype(np.intp) - _INT_MIN]
    return out.reshape(shape)


def exp10(x) -> np.ndarray:
    """10**x as float64, the same bits on every CPU and correctly rounded (see the module docstring).
    nan gives nan, inf inf, -inf 0; overflow gives inf and underflow 0 (subnormals rounded correctly),
    without a floating-point warning; an integral x gives the exact (correctly rounded) power of ten."""
    return _pinned(x, "10", _X_MIN, _X_MAX, True)


def exp(x) -> np.ndarray:
    """e**x as float64, pinned like exp10 (used for generated test spectra, whose inputs must not depend
    on the CPU either). Overflow (x > 709.78...) gives inf, underflow 0."""
    return _pinned(x, "e", -750.0, 710.0, False)


def log10_scalar(value: float) -> float:
    """log10 of one positive float, correctly rounded through 60-digit decimal arithmetic."""
    with localcontext() as ctx:
        ctx.prec = 60
        return float(Decimal(value).log10())
