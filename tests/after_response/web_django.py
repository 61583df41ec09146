"""A minimal Django project in one module, with the Django middleware: served as WSGI by
gunicorn and as ASGI by uvicorn in the tests (also wrapped in the ASGI middleware)."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="after-response-tests",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=["offload.integrations.django.AfterResponseMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.handlers.asgi import ASGIHandler  # noqa: E402  (needs the settings)
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

from offload.integrations.asgi import AfterResponseMiddleware  # noqa: E402
from tests.after_response.apps import aadd_jobs, add_jobs  # noqa: E402


def plain(request: Any) -> HttpResponse:
    return HttpResponse("ok")


def after(request: Any) -> JsonResponse:
    q = request.GET
    return JsonResponse(add_jobs(q["task"], q.get("args", "[]"), int(q.get("count", "1"))))


async def after_async(request: Any) -> JsonResponse:
    q = request.GET
    described = await aadd_jobs(q["task"], q.get("args", "[]"), int(q.get("count", "1")))
    return JsonResponse(described)


urlpatterns = [path("plain", plain), path("after", after), path("after-async", after_async)]

wsgi_application = WSGIHandler()
asgi_application = ASGIHandler()
#: Django under ASGI wrapped in the ASGI middleware too: it adds the lifespan Django lacks,
#: so a SIGTERM to uvicorn stops the pools gracefully.
asgi_wrapped = AfterResponseMiddleware(ASGIHandler())
