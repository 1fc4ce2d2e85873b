"""Secret parameter values at rest and in flight: sealed with Fernet (``cryptography``).

A sealed value is ``{"$secret": "<Fernet token>"}``; the token holds the clear value as
JSON, so a secret list or mapping is sealed whole. The scheduler stores and sends secret
parameters sealed (the schedule's row, its cron entry's kwargs, the broker message);
:meth:`jobs_catalog.definition.Job.call` opens them right before the job runs, so a job
always sees the clear value, and a caller that passes clear values (a plain Celery call,
``manage.py jobs run``) still works.

The keys: ``SECRETS_ENCRYPTION_KEYS``, comma-separated Fernet keys; the first seals, every
one opens (``MultiFernet``), so a new key goes first and the old ones stay until everything
is sealed again under the new one. With none set, one key is derived from ``SECRET_KEY``
(and one from each of ``SECRET_KEY_FALLBACKS``, which open only), so the embedded default
needs no setting; changing ``SECRET_KEY`` then needs the same rotation path.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from jobs_catalog.errors import JobError
from jobs_catalog.params import MASK

#: The one key of a sealed value.
SEALED = "$secret"
#: HKDF's context for a key derived from SECRET_KEY: the derived key serves this use only.
DERIVATION_INFO = b"jobs-platform: secret job parameters at rest, v1"
#: The setting that names the keys.
KEYS_SETTING = "SECRETS_ENCRYPTION_KEYS"


class SecretError(JobError):
    """A secret cannot be sealed or opened (no key opens it, a key is malformed). Never
    carries a secret value; ``field`` names the parameter when one is concerned."""

    def __init__(self, message: str, field: str = ""):
        self.field = field
        self.reason = message
        super().__init__(f"secret parameter {field!r}: {message}" if field else message)

    def __reduce__(self):  # picklable, so it crosses the worker's process boundary intact
        return (type(self), (self.reason, self.field))


def new_key() -> str:
    """A fresh key for ``SECRETS_ENCRYPTION_KEYS``."""
    return Fernet.generate_key().decode()


def key_source() -> str:
    """Where this process's keys come from, for error messages (never the keys)."""
    keys = _configured_keys()
    if keys:
        return f"{KEYS_SETTING} ({len(keys)} key{'s' if len(keys) > 1 else ''})"
    return f"a key derived from SECRET_KEY ({KEYS_SETTING} is not set)"


def keyring() -> MultiFernet:
    """The keys of this process: the first seals, all open. Raises :class:`SecretError`
    when a configured key is not a Fernet key."""
    return MultiFernet(_keys())


def _keys() -> tuple[Fernet, ...]:
    return _fernets(
        _configured_keys(),
        str(settings.SECRET_KEY),
        tuple(str(k) for k in getattr(settings, "SECRET_KEY_FALLBACKS", ())),
    )


def _configured_keys() -> tuple[str, ...]:
    keys = getattr(settings, KEYS_SETTING, ()) or ()
    if isinstance(keys, str):
        keys = keys.split(",")
    return tuple(k.strip() for k in keys if k and k.strip())


@lru_cache(maxsize=8)
def _fernets(
    keys: tuple[str, ...], secret_key: str, fallbacks: tuple[str, ...]
) -> tuple[Fernet, ...]:
    if not keys:
        return tuple(Fernet(_derive(k)) for k in (secret_key, *fallbacks))
    fernets = []
    for number, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise SecretError(
                f"{KEYS_SETTING}: key {number} is not a Fernet key (32 url-safe base64-encoded "
                "bytes); make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    return tuple(fernets)


def _derive(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVATION_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


# --- one value ----------------------------------------------------------------------------
def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get(SEALED), str)


def seal(value: Any) -> dict[str, str]:
    """``value`` (JSON-ready) sealed under the first key."""
    token = keyring().encrypt(json.dumps(value).encode())
    return {SEALED: token.decode()}


def unseal(value: Any, field: str = "") -> Any:
    """The clear value of a sealed one; any other value is returned as it is."""
    if not is_sealed(value):
        return value
    try:
        clear = keyring().decrypt(value[SEALED].encode())
    except InvalidToken:
        raise SecretError(
            f"none of the keys opens its stored value (this process uses {key_source()}): "
            "the key it was sealed with is missing here, or the value is damaged",
            field,
        ) from None
    return json.loads(clear)


def is_current(value: Any) -> bool:
    """Whether ``value`` is sealed under the first key (what rotation leaves behind)."""
    if not is_sealed(value):
        return False
    try:
        _keys()[0].decrypt(value[SEALED].encode())
    except InvalidToken:
        return False
    return True


def unseal_or_none(value: Any) -> Any:
    """As :func:`unseal`, but None for a value no key opens (for masking: a value this
    process cannot open cannot turn up in what it writes either)."""
    try:
        return unseal(value)
    except SecretError:
        return None


def reseal(value: Any, field: str = "") -> Any:
    """``value`` sealed under the first key: a clear one sealed, one sealed under another key
    sealed again, one already under the first key (and None, "") left as it is."""
    if is_current(value):
        return value
    if is_sealed(value):
        try:
            return {SEALED: keyring().rotate(value[SEALED].encode()).decode()}
        except InvalidToken:
            unseal(value, field)  # raises the explained error
            raise
    return seal(value) if value not in (None, "") else value


# --- parameters -----------------------------------------------------------------------------
def seal_params(params: Mapping[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]:
    """A copy of ``params`` with each secret value sealed (None and "" are no secret, and a
    sealed value stays as it is)."""
    out = dict(params)
    for name in _present(out, secret_fields):
        value = out[name]
        if value not in (None, "") and not is_sealed(value):
            out[name] = seal(value)
    return out


def unseal_params(params: Mapping[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]:
    """A copy of ``params`` with each sealed secret value opened. Only secret fields are
    opened: a sealed value put in another field would reach the history unmasked."""
    out = dict(params)
    for name in _present(out, secret_fields):
        out[name] = unseal(out[name], name)
    return out


def reseal_params(params: Mapping[str, Any], secret_fields: Iterable[str]) -> dict[str, Any]:
    """A copy of ``params`` with each secret value sealed under the first key (unchanged
    when they all are already)."""
    out = dict(params)
    for name in _present(out, secret_fields):
        out[name] = reseal(out[name], name)
    return out


def _present(params: dict[str, Any], secret_fields: Iterable[str]) -> list[str]:
    """The secret fields ``params`` holds, in its order (so the first error is the first
    field's, whatever the set's order)."""
    wanted = set(secret_fields)
    return [name for name in params if name in wanted]


def mask_sealed(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with every sealed value masked (what a message's ``kwargsrepr``
    shows: even the token stays out of monitoring tools)."""
    return {k: (MASK if is_sealed(v) else v) for k, v in params.items()}
