"""The header fast path remembers what repeats from file to file (card values and keywords by their bytes,
header-rule verdicts by keyword): the answers must be the ones computed afresh, and the memory bounded."""

from __future__ import annotations

import pickle

import pytest
from astropy.io import fits

from shardmerge import headers
from shardmerge.headers import _keeps, load_header_rules
from shardmerge.readers import fastfits

pytestmark = pytest.mark.timeout(60)

CARDS = [
    "BITPIX  =                  -32 / bits per pixel",
    "CRVAL1  =   3.5791000000000D+00",
    "CDELT1  =               1.0E-4",
    "SIMPLE  =                    T",
    "EXTEND  =                    F",
    "BUNIT   = '1E-17 erg/cm^2/s/Ang' / flux unit",
    "OBJECT  = 'O''Brien star'",  # a quote inside: astropy parses it, and it is not remembered
    "HIERARCH ESO DET CHIP NAME = 'CCD-44' / a HIERARCH card",
    "DATE-OBS= '2019-04-01T03:04:05'",
]


@pytest.fixture(autouse=True)
def fresh_memos(monkeypatch):
    monkeypatch.setattr(fastfits, "_VALUES", {})
    monkeypatch.setattr(fastfits, "_KEYWORDS", {})


def _raw(text: str) -> bytes:
    return text.ljust(80).encode("ascii")


def test_remembered_values_and_keywords_are_those_computed_afresh():
    for text in CARDS + CARDS:  # the second pass is answered from the memos
        card = fits.Card.fromstring(text.ljust(80))
        value = fastfits.card_value(_raw(text))
        assert value == card.value and type(value) is type(card.value), text
        assert fastfits._keyword(_raw(text)) == card.keyword.upper()
    assert _raw(CARDS[6]) not in fastfits._VALUES  # astropy's answers are not kept
    assert _raw(CARDS[0]) in fastfits._VALUES


def test_the_memos_are_bounded(monkeypatch):
    monkeypatch.setattr(fastfits, "_MEMO_MAX", 2)
    for k in range(10):
        text = f"KEY{k:<5d}= {k}"
        assert fastfits.card_value(_raw(text)) == k
        assert fastfits._keyword(_raw(text)) == f"KEY{k}"
    assert len(fastfits._VALUES) == 2 and len(fastfits._KEYWORDS) == 2


def test_header_rule_verdicts_remembered_by_keyword_are_the_rules_own(monkeypatch):
    rules = load_header_rules()
    keywords = ["OBJECT", "object", "RA", "CHECKSUM", "NAXIS1", "HIERARCH ESO DET CHIP NAME", "TTYPE3", "X"]
    for keyword in keywords + keywords:
        assert rules.keeps(keyword) == _keeps(rules.include, rules.exclude, keyword.upper()), keyword
    again = pickle.loads(pickle.dumps(rules))  # the rules travel to workers with their memo
    assert again == rules and hash(again) == hash(rules)
    assert [again.keeps(k) for k in keywords] == [rules.keeps(k) for k in keywords]
    monkeypatch.setattr(headers, "_MEMO_MAX", 1)
    bounded = load_header_rules()
    for keyword in keywords:
        bounded.keeps(keyword)
    assert len(bounded._kept) == 1
