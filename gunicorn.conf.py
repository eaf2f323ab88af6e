"""gunicorn settings the portal always runs with; gunicorn reads this file from the working
directory (the image's /app), and the Dockerfile and docker-compose.yml name it as well.

The `Server` header names no product or version (docs/architecture.md, Browser policies).
gunicorn has no setting for it: every response starts with `Server: <gunicorn.http.wsgi.SERVER>`,
read when the response is made, so the name is replaced here, in the master, before any worker
is forked. tests/security/test_server_header.py starts gunicorn with this file and reads the
header, so an upgrade that moves the name fails there instead of leaking it.
"""

import gunicorn.http.wsgi

gunicorn.http.wsgi.SERVER = "RefundPortal"  # type: ignore[attr-defined]
