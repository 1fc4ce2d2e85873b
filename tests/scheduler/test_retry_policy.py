"""Pure rules of the run history: the retry policy's layers, an attempt's outcome, and
what the history keeps of free text (secrets masked, bounded)."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from jobs_catalog import ParameterError, RetryableError, RetryPolicy
from scheduler.runs.redaction import MAX_RESULT, Redactor, mask_plain_kwargs, summary, tail
from scheduler.runs.retries import RetryPolicyError, outcome, resolve_policy, run_layer

JOB = RetryPolicy(max_attempts=5, backoff_base=1, backoff_cap=60, retry_on=(ConnectionError,))


def test_each_setting_comes_from_the_first_layer_that_sets_it():
    schedule = {"retry_max_attempts": 2, "retry_backoff_base": None, "retry_backoff_cap": 30}
    run = {"retry_backoff_base": "0.5"}
    policy = resolve_policy(JOB, schedule, run)
    assert (policy.max_attempts, policy.backoff_base, policy.backoff_cap) == (2, 0.5, 30.0)
    assert policy.retry_on == (ConnectionError,)  # what is retried stays the job's to say
    assert resolve_policy(JOB, None, None) is JOB
    assert resolve_policy(JOB, schedule, {"retry_max_attempts": 9}).max_attempts == 9


@pytest.mark.parametrize(
    ("schedule", "run", "message"),
    [
        ({"retry_backoff_base": -5}, None, "retry_backoff_base=-5 (the schedule's)"),
        ({"retry_max_attempts": 0}, None, "max_attempts must be between 1"),
        ({"retry_backoff_base": 120}, None, "backoff_cap must be at least the backoff base"),
        (None, {"retry_backoff_cap": "soon"}, "retry_backoff_cap='soon' (the run's)"),
        (None, {"retry_max_attempts": "2.5"}, "retry_max_attempts='2.5' (the run's)"),
    ],
)
def test_a_policy_the_layers_break_is_refused_with_what_and_where(schedule, run, message):
    with pytest.raises(RetryPolicyError, match="invalid retry policy: ") as caught:
        resolve_policy(JOB, schedule, run)
    assert message in str(caught.value)


def test_the_run_layer_is_read_from_message_headers():
    headers = {"retry_max_attempts": 1, "trigger": "beat"}
    assert run_layer(headers.get) == {"retry_max_attempts": 1}


@pytest.mark.parametrize(
    ("exc", "attempt", "expected"),
    [
        (ConnectionError("reset"), 1, "retrying"),
        (ConnectionError("reset"), 5, "failed"),  # the last attempt
        (RetryableError("not declared by this job"), 1, "failed"),
        (ParameterError("j", []), 1, "failed"),
        (KeyError("bug"), 1, "failed"),
        (SoftTimeLimitExceeded(), 1, "timed_out"),
        (TimeLimitExceeded(10), 1, "timed_out"),
    ],
)
def test_outcome(exc, attempt, expected):
    assert outcome(exc, JOB, attempt, 5) == expected


def test_secrets_are_masked_before_anything_is_cut():
    redactor = Redactor.for_params(
        {"token": "abc123", "keys": ["k-one", "k-two"]}, ["token", "keys"]
    )
    assert redactor.text("token=abc123 keys k-one,k-two") == "token=******** keys ********,********"
    long = "x" * 5000 + "abc123" + "y" * 5000
    text = summary({"body": long}, redactor)
    assert len(text) <= MAX_RESULT and "abc" not in text.replace("********", "")
    assert summary(None, redactor) == "" and not Redactor()


def test_a_result_with_a_broken_repr_is_still_summarised():
    class Broken:
        def __repr__(self):
            raise RuntimeError("no")

    assert summary([Broken()], Redactor()) == "[<unrepresentable Broken: RuntimeError>]"


def test_text_is_bounded_from_its_end_and_plain_kwargs_are_masked_by_name():
    assert tail("abcdef", 4) == "…def"
    assert mask_plain_kwargs({"password": "p", "api_key": "k", "user": "u", "token": ""}) == {
        "password": "********",
        "api_key": "********",
        "user": "u",
        "token": "",
    }
