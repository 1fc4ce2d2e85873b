"""A real ``celery -A config beat`` brings the JobDefinition mirror in step as it starts
(jobs_catalog.sync_hooks, on Celery's ``beat_init``): a release that changed a job's
description, deployed without a migration, is described right once beat is up, with no worker
running. Celery sends ``beat_init`` after it has set Django up (its Django fixup, as the loader
imports the task modules) and created the scheduler, so the receiver connected by the catalog
app's ``ready()`` is there to hear it."""

from __future__ import annotations

import pytest

from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from tests.support.processes import celery_beat, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

JOB = "builtin.http_request"


def test_beat_syncs_the_catalog_mirror_as_it_starts(platform):
    # As an earlier release described it.
    JobDefinition.objects.filter(name=JOB).update(title="An older title")
    stale = JobDefinition.objects.get(name=JOB)

    with celery_beat(platform.tmp_path, platform.env) as beat:
        wait_for(
            lambda: JobDefinition.objects.get(name=JOB).title != "An older title",
            30,
            "beat to sync the catalog mirror",
        )
        beat.wait_for_output("job catalog synced: 0 new, 1 changed")

    synced = JobDefinition.objects.get(name=JOB)
    assert synced.title == registry.find(JOB).title
    assert synced.changed_at > stale.changed_at and synced.last_seen > stale.last_seen
