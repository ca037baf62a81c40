"""news-monitor: poll feeds and pages, match items against rules, send email digests."""

__version__ = "0.1.0"
