"""Cross-cutting pieces of the cloud: settings, logging, errors, security."""
