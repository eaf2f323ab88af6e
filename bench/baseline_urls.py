"""A one-query view: the floor of a request through the same stack (middleware, gunicorn,
one round trip to PostgreSQL). Pages are measured against it in the same run."""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path


def baseline(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM orders_shop WHERE id = %s", [1])
        (count,) = cursor.fetchone()
    return HttpResponse(f"ok {count}\n", content_type="text/plain")


urlpatterns = [path("_bench/baseline/", baseline, name="bench-baseline")]
