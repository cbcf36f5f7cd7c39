"""Monitoring: ``link-mq status`` (``status``), Prometheus metrics (``metrics``), Flower's broker
page for ``linkmq+`` URLs (``flower_broker``) and the worker step that sends task events in groups
(``task_events``)."""
