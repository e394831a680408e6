"""Run by every Python interpreter started under ``harness-instrument``, which puts this
directory first on ``PYTHONPATH`` (it is not a package anyone imports).

It sets tracing up from the standard ``OTEL_*`` variables, then runs the ``sitecustomize``
this one hides, if there is one later on ``sys.path``. It never stops the interpreter from
starting: an interpreter without ``harness_instrument`` says so in one line and runs
untraced.
"""

import os
import sys


def _configure() -> None:
    try:
        from harness_instrument.auto import configure_from_env
    except ImportError as e:
        print(
            f"harness-instrument: {sys.executable} cannot import harness_instrument ({e}); "
            f"this process is not traced. Fix: {sys.executable} -m pip install "
            "livekit-call-harness-instrument",
            file=sys.stderr,
        )
        return
    try:
        configure_from_env()
    except Exception as e:  # it never raises; an interpreter must start regardless
        print(
            f"harness-instrument: tracing set-up failed: {type(e).__name__}: {e}", file=sys.stderr
        )


def _chain() -> None:
    """Import the next ``sitecustomize`` on ``sys.path`` (a distribution's or the system's)."""
    here = os.path.dirname(os.path.abspath(__file__))

    def is_here(entry: str) -> bool:
        try:
            return os.path.abspath(entry or os.curdir) == here
        except (TypeError, ValueError):
            return False

    positions = [i for i, entry in enumerate(sys.path) if is_here(entry)]
    removed = [sys.path[i] for i in positions]
    for i in reversed(positions):
        del sys.path[i]
    this = sys.modules.pop("sitecustomize", None)
    try:
        import importlib.util

        if importlib.util.find_spec("sitecustomize") is not None:
            import sitecustomize  # noqa: F401  (the next one: it replaces this module)
    except Exception as e:  # as site.py would report it, but in one line
        print(
            f"harness-instrument: the next sitecustomize failed: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
    finally:
        for i, entry in zip(positions, removed, strict=True):
            sys.path.insert(min(i, len(sys.path)), entry)
        # the import of this module ends by reading it back from sys.modules
        if "sitecustomize" not in sys.modules and this is not None:
            sys.modules["sitecustomize"] = this


_configure()
_chain()
