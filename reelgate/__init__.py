"""reelgate: a self-hosted platform for selling AI video generation."""

__version__ = "0.1.0"
