"""``link-mq demo``: the runner that starts a real worker and beat on a SQLite file (``runner``)
and the demo's workflow config (``workflow``, ``LINK_MQ_CONFIG=link_message_queue.demo.workflow``).
Empty, so that loading the workflow config loads nothing of the runner."""
