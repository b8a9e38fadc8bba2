"""Celery workers: the app, the beat schedule and thin tasks that call services."""
