"""Completion callbacks: when an occurrence ends (succeeded; failed, timed out or lost with no
attempt following; cancelled; skipped), a signed JSON POST to the URL the application named
when it triggered the run (``RunRequest.callback_url``, signed with ``CALLBACK_SIGNING_SECRET``)
and to its schedule's callback channel (a webhook channel, signed with the channel's secret).
One delivery per ended attempt and target, recorded, retried with backoff, never sent twice.

- ``hooks``: hears the end through the run events, records the deliveries;
- ``body``: what the POST says (no secret in it);
- ``send``: the POST, through the outbound destination policy, no redirect followed;
- ``tasks``: the task sending one delivery, its queueing and the watchdog's sweep;
- ``admin``: the record in the admin, and the table on a run's page.
"""
