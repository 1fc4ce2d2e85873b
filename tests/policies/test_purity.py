"""The policies import without Django: run in a fresh interpreter with no settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def policy_modules() -> list[str]:
    """Every module of scheduler/policies/, found on disk so a new one (retry layering, say)
    is guarded from the day it is added."""
    names = sorted(p.stem for p in (ROOT / "scheduler" / "policies").glob("*.py"))
    return [f"scheduler.policies.{n}".removesuffix(".__init__") for n in names]


def test_the_known_policies_are_found() -> None:
    assert {
        "scheduler.policies",
        "scheduler.policies.cron",
        "scheduler.policies.jitter",
        "scheduler.policies.misfire",
        "scheduler.policies.overlap",
    } <= set(policy_modules())


def test_policies_import_without_django() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = (
        f"import {', '.join(policy_modules())}; import sys; "
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
