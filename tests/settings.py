"""The test process's settings: the platform's, plus an app whose jobs the tests run.

Child processes (workers, beats) get the same app through EXTRA_INSTALLED_APPS.
"""

import sys

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

SAMPLE_APP = "tests.fixtures.sample_app"
if SAMPLE_APP not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, SAMPLE_APP]

# No pruning schedule in the test databases (tests create one when they want it): it would
# be one more schedule, cron entry and protected job definition in every test.
JOBS_HISTORY_PRUNE_CRON = ""

# The tests' HTTP servers listen on 127.0.0.1, which the HTTP job refuses by default (see
# jobs_catalog.builtin.http_destinations); the destination policy's own tests override this.
JOBS_HTTP_ALLOW = ["127.0.0.1"]

# Beat runs the overview's rollup and forecast in threads of their own. In the test process,
# whose beats are driven by tests inside a transaction, such a thread would race the test's
# teardown: off there (their tests call them). Child beats (no pytest) run them as deployed.
if "pytest" in sys.modules:
    OVERVIEW_ROLLUP_INTERVAL = 0
    OVERVIEW_FORECAST_INTERVAL = 0
