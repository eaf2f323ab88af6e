"""The API toolkit (parser, strict serializer, fields, error handler, throttles, permissions)
shared by every app's `api.py`, in one place (docs/architecture.md, Apps)."""
