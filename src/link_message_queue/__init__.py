"""link-message-queue: prooph LINK workflow messages as Celery tasks on a queue in the
application's own database."""

__version__ = "0.1.0"
