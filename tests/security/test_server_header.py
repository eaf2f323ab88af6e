"""gunicorn, as the image runs it, names no product or version in the `Server` header.

The test starts the real gunicorn with the project's `gunicorn.conf.py` on a free local port,
against the test settings, and reads the header of a response; the image and compose are
checked to start gunicorn with that file.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answer(port: int) -> http.client.HTTPResponse | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api/no-such-endpoint/")
        response = connection.getresponse()
        response.read()
        return response
    except OSError:
        return None
    finally:
        connection.close()


@pytest.fixture
def gunicorn_port(tmp_path) -> Iterator[int]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "refundportal.settings.test"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "refundportal.wsgi"),
                *("--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"),
                *("--workers", "1"),
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Waiting for the workers to boot is not a timing assertion: the header is the check.
        deadline = time.monotonic() + 60
        while answer(port) is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"gunicorn never answered:\n{log.read_text()}"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorn_names_no_product_or_version(gunicorn_port):
    response = answer(gunicorn_port)

    assert response is not None
    server = response.getheader("Server")
    assert server == "RefundPortal", server
    assert not re.search(r"gunicorn|python|\d", server or "", re.IGNORECASE)


def test_the_image_and_compose_start_gunicorn_with_the_config():
    for name in ("Dockerfile", "docker-compose.yml"):
        text = (BASE_DIR / name).read_text()
        commands = [line for line in text.splitlines() if "gunicorn refundportal.wsgi" in line]
        commands += [
            line for line in text.splitlines() if '"gunicorn", "refundportal.wsgi"' in line
        ]
        assert commands, f"{name} does not start gunicorn"
        for line in commands:
            assert "gunicorn.conf.py" in line, f"{name}: {line.strip()}"
