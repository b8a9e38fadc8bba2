"""Cloud ingest: decode and validate envelopes, store them idempotently, dead-letter the rest."""
