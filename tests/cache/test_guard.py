"""The semantic guard, without I/O: what it keeps apart and what it lets through."""

from __future__ import annotations

import pytest

from gateway.cache.guard import same_meaning_markers


@pytest.mark.parametrize(("a", "b"), [
    ("Convert 5 km to miles.", "Convert 50 km to miles."),
    ("Give me three tips.", "Give me five tips."),
    ("Is X safe?", "Is X unsafe?"),
    ("Is X safe?", "Is X not safe?"),
    ("Which plans include support?", "Which plans exclude support?"),
    ("How do I enable 2FA?", "How do I disable 2FA?"),
    ("Which is the largest planet?", "Which is the smallest planet?"),
    ("Convert 5 miles to km.", "Convert 5 km to miles."),
    ("What is the capital of France?", "What is the capital of Spain?"),
    ("What's the weather tomorrow?", "What's the weather today?"),
])  # fmt: skip
def test_kept_apart(a: str, b: str) -> None:
    assert not same_meaning_markers(a, b)
    assert not same_meaning_markers(b, a)


@pytest.mark.parametrize(("a", "b"), [
    ("What is the capital of France?", "What's the capital of France?"),
    ("How do I reverse a list in Python?", "In Python, how can I reverse a list?"),
    ("Order 12 eggs.", "Order twelve eggs."),
    ("Is the store open on Sundays?", "Is the shop open on Sunday?"),
    ("How long does shipping take?", "How many days does shipping take?"),
])  # fmt: skip
def test_let_through(a: str, b: str) -> None:
    assert same_meaning_markers(a, b)
