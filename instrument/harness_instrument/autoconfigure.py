"""The one line that sets tracing up without the launcher, first thing in a service::

    import harness_instrument.autoconfigure  # noqa: F401

Importing it calls :func:`harness_instrument.auto.configure_from_env` (the standard
``OTEL_*`` variables; see :mod:`harness_instrument.auto`); later imports do nothing more.
"""

from __future__ import annotations

from harness_instrument.auto import configure_from_env

tracer_provider = configure_from_env()
"""The provider it set up, or None when tracing is off (or could not be set up)."""
