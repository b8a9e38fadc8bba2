"""Allow `python -m mallpulse`."""

from mallpulse.cli import main

main()
