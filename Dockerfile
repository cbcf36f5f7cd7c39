# A slim image of link-message-queue: the worker, beat, Flower, `link-mq` — run as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY src ./src
RUN pip install '.[postgres,flower]' \
    && useradd --create-home --uid 10001 --user-group linkmq \
    && mkdir /data && chown linkmq:linkmq /data

# celeryconfig.py (settings from the environment) is found on the path; the working directory
# is the one place the process may write (the demo's CSV file, beat's schedule).
ENV PYTHONPATH=/app
USER linkmq
WORKDIR /data

CMD ["celery", "-A", "link_message_queue.celery_app", "worker", "--loglevel", "INFO"]
