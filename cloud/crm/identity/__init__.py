"""Identity: identifier normalisation, merge rules, the union-find resolver and its service."""
