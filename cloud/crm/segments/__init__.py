"""Segments: a rule language compiled to SQL, static and dynamic membership kept current."""
