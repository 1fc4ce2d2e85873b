import re

import pytest

from jobs_catalog import JobDefinitionError, RetryableError, RetryPolicy, job
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
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be between 1 (no retry) and 100, not 0"),
        ({"max_attempts": 101}, "max_attempts must be between 1 (no retry) and 100"),
        ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
        ({"max_attempts": True}, "max_attempts must be a whole number"),
        ({"backoff_base": -1}, "backoff_base must be more than 0"),
        ({"backoff_base": 0}, "backoff_base must be more than 0"),
        ({"backoff_base": float("nan")}, "backoff_base must be a number of seconds"),
        ({"backoff_cap": float("inf")}, "backoff_cap must be a number of seconds"),
        ({"backoff_base": "2"}, "backoff_base must be a number of seconds"),
        ({"backoff_base": 10, "backoff_cap": 5}, "backoff_cap must be at least the backoff base"),
        ({"backoff_cap": 100_000}, "at most 86400 seconds"),
        ({"jitter": "yes"}, "jitter must be True or False"),
        ({"retry_on": ("nope",)}, "retry_on must be a tuple of exception classes"),
    ],
)
def test_bad_policies_are_refused(kwargs, message):
    with pytest.raises(JobDefinitionError, match=re.escape(message)):
        RetryPolicy(**kwargs)


def test_a_bare_exception_class_or_a_list_is_taken_as_a_tuple():
    assert RetryPolicy(retry_on=ValueError).retry_on == (ValueError,)
    assert RetryPolicy(retry_on=[KeyError]).is_retryable(KeyError())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": {"max_attempts": 0}}, "retry must be a RetryPolicy(...)"),
        ({"queue": "../../x y"}, "is no queue name"),
        ({"queue": ""}, "a queue name must be a non-empty text"),
        ({"time_limit": "60"}, "time_limit must be positive"),
    ],
)
def test_the_decorator_refuses_nonsense_at_import(options, message, fresh_registry):
    with pytest.raises(JobDefinitionError, match=re.escape(message)):

        @job("tests.nonsense", registry=fresh_registry, **options)
        def nonsense() -> None:
            pass

    assert "tests.nonsense" not in fresh_registry
