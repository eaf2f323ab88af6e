# RefundPortal image: one image for web (gunicorn), the Celery worker and Celery beat; the
# command is chosen by docker-compose.yml. Settings come from the environment only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=refundportal.settings.production

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. pyproject.toml lists no packages
# ([tool.setuptools] packages = []): `pip install .` installs the runtime dependencies only.
COPY pyproject.toml ./
RUN pip install . && rm -rf build ./*.egg-info

COPY . .

# Static files are collected at build time and served by WhiteNoise. The build has no secrets,
# so it uses the base settings with a throwaway key; STORAGES is the same in production.
# var/media and var/beat exist in the image, owned by app, so the named volumes mounted there
# start out writable by the non-root user.
RUN mkdir -p static var/media var/beat \
    && DJANGO_SETTINGS_MODULE=refundportal.settings.base SECRET_KEY=collectstatic-only \
       python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf var/broker var/db.sqlite3* \
    && chown -R app:app var

USER app

EXPOSE 8000

# gunicorn.conf.py: no product or version in the Server header.
CMD ["gunicorn", "refundportal.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
