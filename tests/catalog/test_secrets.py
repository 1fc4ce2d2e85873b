"""Sealing secret parameter values (``jobs_catalog.secrets``): what a sealed value holds,
the keys (configured, derived from SECRET_KEY, rotated), the errors of a wrong or malformed
key, and a job that opens sealed values right before it runs."""

from __future__ import annotations

import json
import pickle

import pytest
from django.core import checks

from jobs_catalog import Param
from jobs_catalog.definition import Job
from jobs_catalog.secrets import (
    SEALED,
    SecretError,
    is_current,
    is_sealed,
    mask_sealed,
    reseal_params,
    seal,
    seal_params,
    unseal,
    unseal_or_none,
    unseal_params,
)

SECRET = "tok-Very-Secret-77"


def echo(url: str, token: str = Param("", secret=True), pairs: list[str] = Param([], secret=True)):
    return {"url": url, "token": token, "pairs": pairs}


ECHO = Job(name="tests.secrets.echo", func=echo, title="Echo")


def test_a_sealed_value_holds_no_clear_text_and_opens_to_the_value(keys):
    for value in (SECRET, ["a-long-item", "b-long-item"], {"user": "u-name", "pw": SECRET}, 42):
        sealed = seal(value)
        assert set(sealed) == {SEALED} and is_sealed(sealed)
        # (A short number's digits could turn up in any token by chance: text only.)
        assert json.dumps(value).strip('"') not in json.dumps(sealed) or value == 42
        assert unseal(sealed) == value
    assert unseal("plain") == "plain"  # a clear value passes through
    assert seal(SECRET) != seal(SECRET)  # a fresh token each time


def test_params_seal_only_secret_fields_and_never_twice(keys):
    params = {"url": "http://x", "token": SECRET, "pairs": ["p-item"], "other": "visible"}
    sealed = seal_params(params, ECHO.secret_fields)
    assert sealed["url"] == "http://x" and sealed["other"] == "visible"
    assert is_sealed(sealed["token"]) and is_sealed(sealed["pairs"])
    assert seal_params({"token": ""}, ECHO.secret_fields) == {"token": ""}  # nothing to hide
    assert seal_params(sealed, ECHO.secret_fields) == sealed
    assert unseal_params(sealed, ECHO.secret_fields) == params
    # A sealed value in a field that is not secret is not opened: it would be shown.
    assert unseal_params({"url": sealed["token"]}, ECHO.secret_fields)["url"] == sealed["token"]
    assert mask_sealed(sealed) == {**params, "token": "********", "pairs": "********"}


def test_the_new_key_seals_and_the_old_one_still_opens(keys):
    old = seal(SECRET)
    keys.use(keys.new, keys.old)
    assert unseal(old) == SECRET and not is_current(old)
    new = reseal_params({"token": old}, ["token"])["token"]
    assert is_current(new) and new != old
    assert reseal_params({"token": new}, ["token"])["token"] == new  # already current
    keys.use(keys.new)
    assert unseal(new) == SECRET
    with pytest.raises(SecretError):
        unseal(old)


def test_a_value_no_key_opens_is_a_clear_error_without_the_value(keys):
    sealed = seal(SECRET)
    keys.use(keys.new)
    with pytest.raises(SecretError) as caught:
        unseal_params({"token": sealed}, ["token"])
    message = str(caught.value)
    assert message.startswith("secret parameter 'token': none of the keys opens its stored value")
    assert "SECRETS_ENCRYPTION_KEYS (1 key)" in message
    assert SECRET not in message and sealed[SEALED] not in message
    assert caught.value.field == "token"
    copy = pickle.loads(pickle.dumps(caught.value))  # crosses the worker's process boundary
    assert (str(copy), copy.field) == (message, "token")
    assert unseal_or_none(sealed) is None  # for masking: nothing to mask


def test_a_malformed_key_is_refused_by_name_and_by_the_system_check(keys):
    keys.use(keys.new, "not-a-fernet-key")
    with pytest.raises(SecretError, match=r"SECRETS_ENCRYPTION_KEYS: key 2 is not a Fernet key"):
        seal(SECRET)
    errors = [m for m in checks.run_checks() if m.id == "jobs_catalog.E002"]
    assert len(errors) == 1 and "key 2" in errors[0].msg and "not-a-fernet-key" not in errors[0].msg


def test_without_keys_one_is_derived_from_secret_key_and_its_fallbacks_open(settings):
    settings.SECRETS_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = "first-secret-key"
    sealed = seal(SECRET)
    settings.SECRET_KEY = "second-secret-key"
    with pytest.raises(SecretError, match=r"derived from SECRET_KEY"):
        unseal(sealed)
    settings.SECRET_KEY_FALLBACKS = ["first-secret-key"]
    assert unseal(sealed) == SECRET and not is_current(sealed)
    assert is_current(reseal_params({"t": sealed}, ["t"])["t"])


def test_a_job_opens_sealed_values_right_before_it_runs_and_takes_clear_ones(keys):
    sealed = seal_params({"url": "u", "token": SECRET, "pairs": ["p-1"]}, ECHO.secret_fields)
    assert ECHO.call(sealed) == {"url": "u", "token": SECRET, "pairs": ["p-1"]}
    assert ECHO.call({"url": "u", "token": SECRET}) == {"url": "u", "token": SECRET, "pairs": []}
    keys.use(keys.new)
    with pytest.raises(SecretError, match="secret parameter 'token'"):
        ECHO.call(sealed)
