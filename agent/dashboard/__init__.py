"""The owner's view: figures for a period, drawn as a page on the admin listener
(``GET /``) or written by ``voice-agent report`` (a table, JSON, or the same page as a file).

``period`` (which days), ``figures`` (what is counted, read from the database), ``stats``
(the pure arithmetic), ``svg`` (the charts), ``html`` (the pages), ``audit`` (one call's
trail, numbers masked), ``auth`` (password and sessions), ``routes`` (the HTTP handlers).
"""
