"""Prometheus metrics for ``/metrics`` on the admin listener (``[admin]``).

``registry``: every metric, its help text and its labels, in one place; ``labels``: the
bounded label values (pure); ``record``: what the rest of the agent calls when something
happens (one line at each place); ``collectors``: the figures read from the database and the
configuration at scrape time; ``exposition``: the aiohttp handler.
"""
