"""The API's URLs, for ``include("scheduler.web.api.urls")`` (the project's URLconf names apps
by dotted path)."""

from scheduler.web.api.app import api

urlpatterns, _app, app_name = api.urls
