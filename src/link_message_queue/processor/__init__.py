"""The workflow processor: process definitions that run through the queue, with their state
in the application database."""
