"""Celery configuration for link-message-queue, read from the environment and nothing else.

Every value comes from the LINK_MQ_* variables (see docs/configuration.md and
``link_message_queue.settings``); edit here only to add Celery settings of your own.
"""

from link_message_queue.celery_config import celery_config
from link_message_queue.settings import Settings

globals().update(celery_config(Settings.from_env()))
