"""Settings, read from the environment (12-factor). Every variable is listed in the README.

With nothing set, the platform runs on a SQLite file and kombu's filesystem broker under
``DATA_DIR``, so a fresh machine needs no server. ``DATABASE_URL`` and ``CELERY_BROKER_URL``
switch to PostgreSQL and Redis or RabbitMQ with no code change.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.broker import transport_options
from config.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

_DEFAULT_DATABASE_URL = f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL") or _DEFAULT_DATABASE_URL
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}

# A configuration "looks like production" when it is not in DEBUG and either talks to a
# database server or answers to a public host name. There, a missing SECRET_KEY is fatal:
# a guessable key would let anyone forge sessions and password-reset links.
_LOOKS_LIKE_PRODUCTION = not DEBUG and (
    not DATABASE_URL.startswith("sqlite") or not set(ALLOWED_HOSTS) <= _LOCAL_HOSTS
)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if _LOOKS_LIKE_PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. This configuration looks like production "
            "(DEBUG is off and DATABASE_URL or ALLOWED_HOSTS is not local), so it refuses to "
            "start with a built-in key. Set SECRET_KEY to a long random string, e.g. the "
            "output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "insecure-local-only-key-do-not-use-in-production"
# Earlier SECRET_KEYs, still accepted (signatures; and secret parameters when no
# SECRETS_ENCRYPTION_KEYS are set): the way to change SECRET_KEY without losing them.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
# Fernet keys sealing secret job parameters at rest and in flight (jobs_catalog.secrets):
# the first seals, every one opens. Empty: a key derived from SECRET_KEY.
SECRETS_ENCRYPTION_KEYS = env_list("SECRETS_ENCRYPTION_KEYS")

INSTALLED_APPS = [
    "scheduler.web.admin_app.AdminConfig",  # django.contrib.admin with the overview
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "ninja",  # /api/docs: Swagger UI from the platform's own static files, not from a CDN
    "django_celery_beat",
    "jobs_catalog",
    "scheduler",
    *env_list("EXTRA_INSTALLED_APPS"),
]

MIDDLEWARE = [
    # First: probes answer before host validation and sessions (see scheduler.web.health).
    "scheduler.web.health.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps' templates: admin/base_site.html must come before the one of
        # django.contrib.admin, which the app loader finds first (apps load in order).
        "DIRS": [BASE_DIR / "scheduler" / "web" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict:
    config = dj_database_url.parse(url, conn_health_checks=True)
    engine = config["ENGINE"]
    options = config.setdefault("OPTIONS", {})
    if engine == "django.db.backends.sqlite3":
        Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        # WAL lets the web, worker and beat processes read while one writes; IMMEDIATE
        # takes the write lock at BEGIN so concurrent writers wait (busy timeout)
        # instead of failing with "database is locked" on lock upgrade.
        options.setdefault(
            "init_command",
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        )
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 20)
        # Tests start real worker and beat processes, which cannot see an in-memory database.
        config["TEST"] = {"NAME": str(Path(config["NAME"]).with_name("test_db.sqlite3"))}
    elif engine == "django.db.backends.postgresql":
        if env_bool("DATABASE_POOL", True):
            # psycopg 3's pool: connections are reused across requests and tasks.
            # Celery's Django fixup closes inherited pools in forked worker children.
            options["pool"] = {
                "min_size": env_int("DATABASE_POOL_MIN_SIZE", 1),
                "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
                "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0),
            }
        else:
            config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    return config


DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# TIME_ZONE is how the admin displays times; everything is stored and computed in UTC.
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Times Django renders in the admin take the platform's one shape ("2026-12-03 14:05:09 CET").
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", _LOOKS_LIKE_PRODUCTION)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email (alerts) -----------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "jobs@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- HTTP API (/api/) ------------------------------------------------------------------------
# Requests that queue work (trigger, run now, upload) allowed per user: "60/min", "off".
API_TRIGGER_RATE = env_str("API_TRIGGER_RATE", "60/min")
# Where uploads land (a fresh directory per request); must lie inside JOBS_FILE_ROOTS. Empty:
# the upload endpoint answers 503.
API_UPLOAD_ROOT = env_str("API_UPLOAD_ROOT")
API_UPLOAD_MAX_FILES = env_int("API_UPLOAD_MAX_FILES", 1000)
API_UPLOAD_MAX_FILE_BYTES = env_int("API_UPLOAD_MAX_FILE_BYTES", 512 * 1024 * 1024)
API_UPLOAD_MAX_BYTES = env_int("API_UPLOAD_MAX_BYTES", 2 * 1024 * 1024 * 1024)
# The largest JSON body (bytes) the API and the admin read; bigger answers 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 2_621_440)
# Django's own count of files per request must not refuse before the API's cap speaks.
DATA_UPLOAD_MAX_NUMBER_FILES = API_UPLOAD_MAX_FILES + 1

# --- Job catalog ----------------------------------------------------------------------------
# Directories the file jobs may touch; anything outside (symlinks resolved) is refused.
JOBS_FILE_ROOTS = env_list("JOBS_FILE_ROOTS")
# Where the HTTP job may connect beyond the public internet (networks and host names,
# "*.example.org" for a suffix), and what it must never reach; see
# jobs_catalog.builtin.http_destinations. Loopback and private ranges are refused unless allowed;
# link-local and cloud metadata addresses unless allowed by name.
JOBS_HTTP_ALLOW = env_list("JOBS_HTTP_ALLOW")
JOBS_HTTP_DENY = env_list("JOBS_HTTP_DENY")
# Management commands the "run a management command" job may call.
JOBS_MANAGEMENT_COMMANDS = env_list("JOBS_MANAGEMENT_COMMANDS", "clearsessions")
# Time limits for a job that declares none, and the ceiling no job may exceed (seconds).
JOBS_DEFAULT_SOFT_TIME_LIMIT = env_int("JOBS_DEFAULT_SOFT_TIME_LIMIT", 300)
JOBS_DEFAULT_TIME_LIMIT = env_int("JOBS_DEFAULT_TIME_LIMIT", 360)
JOBS_MAX_TIME_LIMIT = env_int("JOBS_MAX_TIME_LIMIT", 6 * 3600)
# Seconds between a worker's reports of what it can run; a worker unseen for three of them no
# longer makes a job available (see jobs_catalog.availability).
JOBS_CATALOG_HEARTBEAT = env_float("JOBS_CATALOG_HEARTBEAT", 30.0)
if JOBS_CATALOG_HEARTBEAT <= 0:
    raise ImproperlyConfigured(
        f"JOBS_CATALOG_HEARTBEAT={JOBS_CATALOG_HEARTBEAT:g} must be a positive number of seconds."
    )
# Seconds a cancellable job (@job(cancellable=True)) has to stop by itself once its running
# run is cancelled, before its worker terminates it; 0 terminates it at once.
JOBS_CANCEL_GRACE = env_float("JOBS_CANCEL_GRACE", 30.0)
if JOBS_CANCEL_GRACE < 0:
    raise ImproperlyConfigured(
        f"JOBS_CANCEL_GRACE={JOBS_CANCEL_GRACE:g} must be a number of seconds, 0 or more."
    )

# What runs around every catalog job on the worker (see jobs_catalog.middleware), in this
# order (their ends run in the reverse one). The log context first, so every line the others
# write carries the run's ids. Metrics next: their end runs after the outcome's, and reads the
# status it recorded. Secrets next: every later step stores or logs masked values. The claim
# next: a delivery it drops leaves nothing recorded or announced. The outcome records the end
# of what was claimed. Progress after it: the job's last report is written before the end.
# Log capture last, innermost: it holds the job's own lines only, handed to the outcome's end.
JOBS_TASK_MIDDLEWARE = [
    "scheduler.runs.middleware.context.LogContext",
    "scheduler.runs.middleware.metrics.RunMetrics",
    "scheduler.runs.middleware.secrets.Redaction",
    "scheduler.runs.middleware.claim.Claim",
    "scheduler.runs.middleware.outcome.Outcome",
    "scheduler.runs.middleware.progress.ProgressControl",
    "scheduler.runs.middleware.logs.CaptureLogs",
]

# --- Scheduler ------------------------------------------------------------------------------
# Seconds: occurrences of a plain django-celery-beat entry missed by longer than this (beat
# down) are not run. Schedules set their own.
SCHEDULER_CATCHUP_WINDOW = env_int("SCHEDULER_CATCHUP_WINDOW", 3600)
# Seconds: an occurrence beat sends later than this after its time (beat was down or busy)
# is a misfire, handled by its schedule's misfire policy; sooner, it simply runs.
SCHEDULER_MISFIRE_GRACE = env_int("SCHEDULER_MISFIRE_GRACE", 60)
# The time beat schedules by: "system", or "file:/path" (tests move time by writing the file).
SCHEDULER_CLOCK = env_str("SCHEDULER_CLOCK", "system")
# Processes beat forks to send messages while it claims the next batch; 0 sends from beat
# itself. Default: 2 on PostgreSQL (built for scale), 0 on the embedded SQLite setup.
SCHEDULER_PUBLISHERS = env_int(
    "SCHEDULER_PUBLISHERS", 2 if DATABASES["default"]["ENGINE"].endswith("postgresql") else 0
)
# Seconds: runs due this soon are committed ahead and sent at their due time, so a busy
# minute's database work is done before it starts. An edit takes effect for runs due later.
SCHEDULER_LOOKAHEAD = env_float("SCHEDULER_LOOKAHEAD", 1.0)
# The run history's pruning (builtin.prune_run_history): runs older than this many days are
# deleted, except each schedule's latest runs, unresolved failures and runs still going.
JOBS_HISTORY_RETENTION_DAYS = env_int("JOBS_HISTORY_RETENTION_DAYS", 30)
JOBS_HISTORY_KEEP_PER_SCHEDULE = env_int("JOBS_HISTORY_KEEP_PER_SCHEDULE", 50)
# When the pruning schedule that migrate creates (if missing) runs, in UTC; empty: none.
JOBS_HISTORY_PRUNE_CRON = env_str("JOBS_HISTORY_PRUNE_CRON", "17 3 * * *").strip()
# Seconds beyond its hard time limit after which an attempt still marked running is taken
# for lost (its worker died unseen) by beat's reaper.
SCHEDULER_REAPER_GRACE = env_int("SCHEDULER_REAPER_GRACE", 60)
# Seconds between two heartbeats of a worker's main process; a worker not heard from for
# SCHEDULER_WORKER_LOST_AFTER seconds is taken for dead by the reaper, its runs lost.
SCHEDULER_WORKER_HEARTBEAT = env_float("SCHEDULER_WORKER_HEARTBEAT", 10.0)
SCHEDULER_WORKER_LOST_AFTER = env_float("SCHEDULER_WORKER_LOST_AFTER", 45.0)
if not 0 < SCHEDULER_WORKER_HEARTBEAT < SCHEDULER_WORKER_LOST_AFTER:
    raise ImproperlyConfigured(
        f"SCHEDULER_WORKER_HEARTBEAT={SCHEDULER_WORKER_HEARTBEAT} must be above 0 and below "
        f"SCHEDULER_WORKER_LOST_AFTER={SCHEDULER_WORKER_LOST_AFTER} (a few heartbeats in it)."
    )
# Seconds a published run may stay queued (a retry: past its due time) before beat's sweep
# publishes it again (its message may be lost); after SCHEDULER_REPUBLISH_LIMIT times it is
# marked lost. Safe in a busy queue: a worker drops a second delivery of a run.
SCHEDULER_REPUBLISH_AFTER = env_int("SCHEDULER_REPUBLISH_AFTER", 300)
SCHEDULER_REPUBLISH_LIMIT = env_int("SCHEDULER_REPUBLISH_LIMIT", 3)
if SCHEDULER_REPUBLISH_AFTER < 1 or SCHEDULER_REPUBLISH_LIMIT < 0:
    raise ImproperlyConfigured(
        f"SCHEDULER_REPUBLISH_AFTER={SCHEDULER_REPUBLISH_AFTER} must be at least 1 and "
        f"SCHEDULER_REPUBLISH_LIMIT={SCHEDULER_REPUBLISH_LIMIT} at least 0."
    )

# --- The overview (the admin's landing page) ------------------------------------------------
# Seconds between two stamps of a beat's heartbeat; a beat not heard from for
# SCHEDULER_BEAT_LOST_AFTER seconds is shown stopped (red) on the overview.
SCHEDULER_BEAT_HEARTBEAT = env_float("SCHEDULER_BEAT_HEARTBEAT", 10.0)
SCHEDULER_BEAT_LOST_AFTER = env_float("SCHEDULER_BEAT_LOST_AFTER", 60.0)
if not 0 < SCHEDULER_BEAT_HEARTBEAT < SCHEDULER_BEAT_LOST_AFTER:
    raise ImproperlyConfigured(
        f"SCHEDULER_BEAT_HEARTBEAT={SCHEDULER_BEAT_HEARTBEAT} must be above 0 and below "
        f"SCHEDULER_BEAT_LOST_AFTER={SCHEDULER_BEAT_LOST_AFTER} (a few heartbeats in it)."
    )
# Seconds between two refreshes (by beat) of the run history rolled up by hour for the charts,
# and of the forecast of the next day's fire times; 0 turns either off.
OVERVIEW_ROLLUP_INTERVAL = env_float("OVERVIEW_ROLLUP_INTERVAL", 15.0)
OVERVIEW_FORECAST_INTERVAL = env_float("OVERVIEW_FORECAST_INTERVAL", 600.0)
# Schedules due in the same second (without jitter) from which the forecast flags a pile-up.
OVERVIEW_PILEUP_AT = env_int("OVERVIEW_PILEUP_AT", 100)

# --- Alerts -------------------------------------------------------------------------------
# Project-wide defaults of every schedule's alert rules; a schedule's alert policy overrides
# them (see scheduler/alerts/). Times in seconds; 0 turns a timed rule off.
ALERTS_ON_FAILURE = env_bool("ALERTS_ON_FAILURE", True)
ALERTS_FAILURE_THRESHOLD = env_int("ALERTS_FAILURE_THRESHOLD", 1)
ALERTS_ON_RECOVERY = env_bool("ALERTS_ON_RECOVERY", True)
ALERTS_ON_MISSED = env_bool("ALERTS_ON_MISSED", True)
ALERTS_DEFAULT_GRACE = env_int("ALERTS_DEFAULT_GRACE", 300)
ALERTS_DEFAULT_MAX_RUNTIME = env_int("ALERTS_DEFAULT_MAX_RUNTIME", 0)
ALERTS_REMINDER_INTERVAL = env_int("ALERTS_REMINDER_INTERVAL", 0)
# More schedules than this missing in one check: one platform incident instead of one each.
ALERTS_STORM_THRESHOLD = env_int("ALERTS_STORM_THRESHOLD", 20)
# How often the watchdog (missed and too-long runs) looks, from workers and beat; 0: never.
ALERTS_WATCHDOG_INTERVAL = env_float("ALERTS_WATCHDOG_INTERVAL", 15.0)
# The queue of the alert delivery task (empty: Celery's default queue).
ALERTS_QUEUE = env_str("ALERTS_QUEUE")
# Attempts to deliver one alert, and the backoff between them (exponential, full jitter).
ALERTS_DELIVERY_ATTEMPTS = env_int("ALERTS_DELIVERY_ATTEMPTS", 6)
ALERTS_DELIVERY_BACKOFF = env_float("ALERTS_DELIVERY_BACKOFF", 30.0)
ALERTS_DELIVERY_BACKOFF_CAP = env_float("ALERTS_DELIVERY_BACKOFF_CAP", 1800.0)
ALERTS_EMAIL_FROM = env_str("ALERTS_EMAIL_FROM") or DEFAULT_FROM_EMAIL
# Where people reach this site: the links in alerts (to a run, a schedule, an incident).
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

# --- Completion callbacks ---------------------------------------------------------------------
# The key that signs the callbacks sent to the URLs applications name when they trigger a run
# (X-Jobs-Signature, as alert webhooks); empty: no run may name a callback URL. A schedule's
# callback channel signs with the channel's own secret. Deliveries run on ALERTS_QUEUE.
CALLBACK_SIGNING_SECRET = env_str("CALLBACK_SIGNING_SECRET")
# Seconds to wait for the receiver of a callback URL.
CALLBACK_TIMEOUT = env_float("CALLBACK_TIMEOUT", 10.0)
# Attempts to deliver one callback, and the backoff between them (exponential, full jitter).
CALLBACK_DELIVERY_ATTEMPTS = env_int("CALLBACK_DELIVERY_ATTEMPTS", 8)
CALLBACK_DELIVERY_BACKOFF = env_float("CALLBACK_DELIVERY_BACKOFF", 10.0)
CALLBACK_DELIVERY_BACKOFF_CAP = env_float("CALLBACK_DELIVERY_BACKOFF_CAP", 3600.0)
if CALLBACK_TIMEOUT <= 0 or CALLBACK_DELIVERY_ATTEMPTS < 1:
    raise ImproperlyConfigured(
        f"CALLBACK_TIMEOUT={CALLBACK_TIMEOUT:g} must be above 0 and "
        f"CALLBACK_DELIVERY_ATTEMPTS={CALLBACK_DELIVERY_ATTEMPTS} at least 1."
    )
if not 0 < CALLBACK_DELIVERY_BACKOFF <= CALLBACK_DELIVERY_BACKOFF_CAP:
    raise ImproperlyConfigured(
        f"CALLBACK_DELIVERY_BACKOFF={CALLBACK_DELIVERY_BACKOFF:g} must be above 0 and at most "
        f"CALLBACK_DELIVERY_BACKOFF_CAP={CALLBACK_DELIVERY_BACKOFF_CAP:g}."
    )

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(
    CELERY_BROKER_URL,
    DATA_DIR,
    JOBS_MAX_TIME_LIMIT,
    visibility_timeout=env_int("CELERY_VISIBILITY_TIMEOUT", 0) or None,
)

# Internally everything is UTC; schedules carry their own time zone.
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# JSON only: a pickle payload from the broker could run arbitrary code on the worker.
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Acknowledge after the job ends, so a worker that dies mid-run leaves the message to be
# redelivered instead of losing it ...
CELERY_TASK_ACKS_LATE = True
# ... including when the child process is killed (SIGKILL, OOM): requeue, don't ack.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A job that fails or times out is recorded by us; acknowledging it avoids a poison loop.
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
# One message at a time per process: long jobs must not hold others hostage in a prefetch
# buffer, and late acks would otherwise let a crash requeue many.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# If the broker connection drops, a running job goes on to its end: its outcome is written to
# the database, which needs no broker. Its message may be delivered again (RabbitMQ requeues
# it at once, Redis after the visibility timeout); the worker drops that delivery (the run is
# over, or still running in this worker: scheduler.runs.running_here). Cancelling instead would
# kill the job halfway and record it failed, and the redelivery would then be dropped too.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnect for as long as the broker is down (Celery gives up after 100 tries by default,
# about an hour, and the worker exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Run history is kept in our own tables; Celery's result backend would be a second copy.
CELERY_TASK_IGNORE_RESULT = True
# Limits for tasks that do not set their own (catalog jobs do).
CELERY_TASK_SOFT_TIME_LIMIT = JOBS_DEFAULT_SOFT_TIME_LIMIT
CELERY_TASK_TIME_LIMIT = JOBS_DEFAULT_TIME_LIMIT
# Celery's Django fixup would otherwise close every database connection (and the whole
# psycopg pool) around every task, so each run would open a new connection; instead the
# worker hands connections back to the pool after each task (scheduler.runs.plain_tasks), and the
# fixup recycles everything only every this many tasks.
CELERY_DB_REUSE_MAX = 1000
# Recycle worker children: a leaky plugin cannot grow without bound. By memory first (KiB of
# resident memory, checked after each job); by count now and then, not every few seconds of
# short jobs (each recycle costs a fork and stalls the jobs handed to the leaving process).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 512 * 1024)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 10_000)
# Route each catalog job to the queue it declares.
CELERY_TASK_ROUTES = ("jobs_catalog.routing.route_job",)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Our indexed, exactly-once scheduler; django-celery-beat's stock one still works here.
CELERY_BEAT_SCHEDULER = env_str("CELERY_BEAT_SCHEDULER", "scheduler.beat:DatabaseScheduler")
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Metrics (Prometheus) ---------------------------------------------------------------
#: /metrics on the web app answers a scrape with ``Authorization: Bearer <METRICS_TOKEN>`` or
#: from an address in METRICS_ALLOW (networks, comma-separated); with neither it is off.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOW = env_list("METRICS_ALLOW")
for _network in METRICS_ALLOW:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOW: {_network!r} is not a network.") from None
#: The worker's and beat's exporter port (0: none) and the address it listens on.
METRICS_PORT = env_int("METRICS_PORT", 0)
METRICS_ADDR = env_str("METRICS_ADDR", "0.0.0.0")

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
#: "plain" (lines for people) or "json" (one JSON object a line, for a log collector).
LOG_FORMAT = env_str("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s"},
        # A record's extra attributes (the run's ids during a run) become fields of their own.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s",
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "processName": "process",
                "name": "logger",
            },
        },
    },
    "filters": {
        # A running job's secret values never reach the logs (scheduler.runs.log_redaction).
        "secrets": {"()": "scheduler.runs.log_redaction.SecretFilter"},
        # The run's ids on each line written during a run (scheduler.runs.log_context).
        "run": {"()": "scheduler.runs.log_context.RunContextFilter"},
        # Celery's "Task ... succeeded" line: its return value on one short line.
        "task_success": {"()": "scheduler.runs.success_log.BoundTaskSuccess"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["secrets", "run"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery.app.trace": {"filters": ["task_success"]},
    },
}

# --- Sentry -------------------------------------------------------------------------------
SENTRY_DSN = env_str("SENTRY_DSN")
#: sentry-sdk's ``before_send``, by dotted path (imported at the first event): by default a
#: running job's secret values are masked in what it reports.
SENTRY_BEFORE_SEND = (
    env_str("SENTRY_BEFORE_SEND") or "scheduler.runs.log_redaction.scrub_sentry_event"
)
if SENTRY_DSN:
    from config import sentry

    sentry.init(
        SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
        before_send=SENTRY_BEFORE_SEND,
    )
