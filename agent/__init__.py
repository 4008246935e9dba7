"""On-premises phone voice agent for home-services businesses."""

__version__ = "0.1.0"
