"""Scheduled synthetic monitoring and live production scoring, with the gates of CI.

The data flow (see ``ARCHITECTURE.md``, "The monitor")::

    schedule --> call engine (real calls to the deployed agent) --\\
    production OTLP (ingest) ------------------------------------+--> Instance --> Scores
    Scores --> store (SQLite, WAL) --> windows (merged sketches) --> gate states
    gate states --> alerts (webhook, Slack, Alertmanager v2) and /metrics

Modules, in that order: :mod:`.model` (the records every step shares), :mod:`.schedule`,
:mod:`.store`, :mod:`.windows`, :mod:`.states`, :mod:`.alerts`, :mod:`.metrics`,
:mod:`.ingest`, :mod:`.runner`.
"""
