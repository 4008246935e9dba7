"""The web service inside ``voice-agent run``: pay pages, payment webhooks, SMS callbacks."""
