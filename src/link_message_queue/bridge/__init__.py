"""The bridge between the workflow engine and Celery: the producer (a channel's message
dispatcher), TickOccurred and the consumer step, worker mode, retries and dead letters."""
