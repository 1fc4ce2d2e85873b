"""scheduler.policies.overlap: what a new occurrence does while earlier ones are active."""

from __future__ import annotations

import pytest

from scheduler.policies.overlap import LABELS, Decision, OverlapPolicy, decide

ALLOW, SKIP, BUFFER_ONE = OverlapPolicy.ALLOW, OverlapPolicy.SKIP, OverlapPolicy.BUFFER_ONE


@pytest.mark.parametrize(
    ("policy", "active", "buffered", "expected"),
    [
        # Nothing active or waiting: every policy publishes.
        (ALLOW, 0, 0, Decision.PUBLISH),
        (SKIP, 0, 0, Decision.PUBLISH),
        (BUFFER_ONE, 0, 0, Decision.PUBLISH),
        # Allow starts every occurrence, however many are active or waiting.
        (ALLOW, 1, 0, Decision.PUBLISH),
        (ALLOW, 5, 3, Decision.PUBLISH),
        # Skip: one active is enough to skip.
        (SKIP, 1, 0, Decision.SKIP),
        (SKIP, 3, 0, Decision.SKIP),
        # Buffer one: the first to come while one runs waits, the next is skipped.
        (BUFFER_ONE, 1, 0, Decision.BUFFER),
        (BUFFER_ONE, 1, 1, Decision.SKIP),
        # A buffered one alone (its predecessor just ended, not yet released) still counts.
        (BUFFER_ONE, 0, 1, Decision.SKIP),
        (SKIP, 0, 1, Decision.SKIP),
    ],
)
def test_decide(policy: OverlapPolicy, active: int, buffered: int, expected: Decision) -> None:
    assert decide(policy, active, buffered) == expected


def test_decide_takes_the_stored_string() -> None:
    # A schedule row holds the policy as text.
    assert decide("skip", 1, 0) == Decision.SKIP
    assert decide("buffer_one", 1, 0) == Decision.BUFFER


def test_every_policy_has_a_label() -> None:
    assert set(LABELS) == set(OverlapPolicy)
