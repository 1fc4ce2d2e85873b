"""The HTTP API under ``/api/``: trigger catalog jobs, read and cancel runs, manage schedules,
upload files for a job. Built on django-ninja (typed with pydantic, like the job parameters;
the OpenAPI document at ``/api/openapi.json`` is generated from the same types).

- ``app``: the NinjaAPI, its routers and error handlers;
- ``auth``: per-user bearer tokens and the permission checks;
- ``errors``: one JSON error shape for every refusal;
- ``storable``: refuses input the database or JSON cannot hold (NUL, NaN), on every endpoint;
- ``throttle``: the rate limit on triggers, counted in the database (shared by processes);
- ``schemas``: what goes in and out;
- ``cursor``: keyset pagination of the run list (never a COUNT);
- ``jobs``, ``runs``, ``schedules``, ``uploads``: the endpoints.
"""
