"""Email through Django's email backend (SMTP with ``EMAIL_HOST``): a subject saying what and
where, a plain-text body with the error, the schedule and links to the admin."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from scheduler.alerts.channels.base import DeliveryError
from scheduler.alerts.messages import Alert
from scheduler.alerts.models import AlertChannel

LINK_LABELS = {
    "run": "The run",
    "runs": "All runs of the schedule",
    "schedule": "The schedule",
    "incident": "The incident",
    "site": "The admin",
}


def render_body(alert: Alert) -> str:
    lines = [alert.summary, ""]
    if alert.error:
        lines += ["Error:", f"    {alert.error}", ""]
    if alert.schedule:
        s = alert.schedule
        lines += [
            f"Schedule: {s['name']}",
            f"Job:      {s['job']}",
            f"Cron:     {s['cron']} ({s['timezone']})",
        ]
    if alert.run:
        r = alert.run
        lines.append(
            f"Run:      #{r['id']} {r['status']}, attempt {r['attempt']}, "
            f"scheduled for {r['scheduled_for']}"
        )
    if alert.incident:
        i = alert.incident
        lines.append(
            f"Incident: #{i['id']} {i['state']}, seen {i['count']} time(s) since {i['opened_at']}"
        )
    lines.append("")
    for name, url in alert.links.items():
        lines.append(f"{LINK_LABELS.get(name, name)}: {url}")
    return "\n".join(lines).strip() + "\n"


class EmailChannel:
    kinds: ClassVar[frozenset[str] | None] = None
    events: ClassVar[frozenset[str] | None] = None

    def send(self, alert: Alert, config: AlertChannel) -> None:
        recipients = config.recipient_list()
        if not recipients:
            raise DeliveryError("the channel has no recipients")
        message = EmailMessage(
            subject=alert.headline,
            body=render_body(alert),
            from_email=settings.ALERTS_EMAIL_FROM,
            to=recipients,
            connection=get_connection(fail_silently=False),
        )
        message.extra_headers["X-Jobs-Alert"] = f"{alert.kind}; event={alert.event}"
        message.send()
