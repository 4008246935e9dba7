"""Intent parsing: the Rasa NLU server (``server.py``) and its HTTP client (``client.py``)."""
