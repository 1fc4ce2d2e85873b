from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("scheduler.web.api.urls")),
    # Browsers ask for /favicon.ico on pages that link no icon (the admin's pages link one).
    path("favicon.ico", RedirectView.as_view(url=static("scheduler/favicon.ico"))),
]
