"""Kept for logging configurations that name ``scheduler.log_redaction.SecretFilter``; the
filter lives in :mod:`scheduler.runs.log_redaction`."""

from scheduler.runs.log_redaction import SecretFilter

__all__ = ["SecretFilter"]
