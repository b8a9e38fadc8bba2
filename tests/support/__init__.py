"""Helpers shared by several test modules (real brokers and processes, cloud stand-ins)."""
