"""`python -m reelgate` runs the CLI."""

from reelgate.cli import app

app()
