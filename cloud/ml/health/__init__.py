"""Customer health score, segments and next-best-action rules."""
