import sys

import pytest

from jobs_catalog.registry import Registry


def forget_fixture_modules() -> None:
    """Un-import the plugin fixtures so their decorators run again into a new registry."""
    for name in [m for m in sys.modules if m.startswith("tests.fixtures.plugins.")]:
        del sys.modules[name]
    sys.modules.pop("tests.fixtures.sample_app.jobs", None)


@pytest.fixture
def fresh_registry() -> Registry:
    forget_fixture_modules()
    return Registry()
