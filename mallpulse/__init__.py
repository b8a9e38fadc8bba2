"""The `mallpulse` command line: a thin dispatcher over the `edge` and `cloud` packages.

This package holds only the CLI composition; `edge` and `cloud` never import each other.
"""

__version__ = "0.1.0"
