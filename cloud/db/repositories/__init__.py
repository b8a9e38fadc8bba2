"""Repositories: functions taking a psycopg connection; the only modules that contain SQL."""
