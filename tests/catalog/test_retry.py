import pytest

from jobs_catalog import JobDefinitionError, RetryableError, RetryPolicy
from jobs_catalog.retry import backoff_delay


def test_backoff_doubles_up_to_the_cap_without_jitter():
    delays = [backoff_delay(n, base=2, cap=20, jitter=False) for n in range(1, 7)]
    assert delays == [2, 4, 8, 16, 20, 20]


def test_full_jitter_scales_the_ceiling():
    assert backoff_delay(3, base=2, cap=100, jitter=True, rand=lambda: 0.5) == 4.0
    assert backoff_delay(3, base=2, cap=100, jitter=True, rand=lambda: 0.0) == 0.0


def test_huge_attempt_numbers_do_not_overflow():
    assert backoff_delay(10_000, base=2, cap=60, jitter=False) == 60


def test_default_policy_retries_transient_errors_only():
    policy = RetryPolicy()
    assert policy.is_retryable(ConnectionError()) and policy.is_retryable(TimeoutError())
    assert policy.is_retryable(RetryableError())
    assert not policy.is_retryable(ValueError()) and not policy.is_retryable(KeyError())


def test_policy_serialises_for_the_catalog_mirror():
    data = RetryPolicy(max_attempts=5, retry_on=(ConnectionError,)).to_dict()
    assert data["max_attempts"] == 5 and data["retry_on"] == ["builtins.ConnectionError"]


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"backoff_base": -1}, {"retry_on": ("nope",)}]
)
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(JobDefinitionError):
        RetryPolicy(**kwargs)
