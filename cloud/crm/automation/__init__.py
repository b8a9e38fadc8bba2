"""Marketing automation: durable customer workflows (issue 15)."""
