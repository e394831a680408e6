"""Which call of an export to import: one conversation out of a trace file holding several.

A production export often holds many calls. :func:`load_conversation` picks the one
``--conversation-id`` names, and without it refuses a file of several, listing the ids it
found. An id that holds personal data (a SIP room named after the caller's number,
``sip_+15558675309_x7``) is listed redacted (``sip_<PHONE>_x7``), and that listed form is
accepted back by ``--conversation-id`` when it is unique.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.call.rundir import CallDir
from harness.core.errors import HarnessError, ScenarioError
from harness.incident.errors import IncidentError
from harness.incident.redact import Redactor
from harness.trace.instance import Instance

__all__ = ["OPTION", "load_conversation", "shown_id"]

OPTION = "--conversation-id"
"""The command-line option that picks a conversation (named in errors)."""
_LISTED = 20


def shown_id(conversation_id: str) -> str:
    """A conversation id as it may be printed: the personal data it holds redacted."""
    return Redactor().redact(conversation_id, speaker="system").text


def _listing(ids: list[str]) -> str:
    shown = sorted(shown_id(i) for i in ids)
    more = len(shown) - _LISTED
    text = ", ".join(shown[:_LISTED])
    return text + (f" and {more} more" if more > 0 else "")


def _read(trace: Path) -> Mapping[str, Instance]:
    from harness.trace.otlp import load_instances

    if trace.is_dir():
        if not CallDir(trace).trace.is_file():
            raise IncidentError(f"no {CallDir(trace).trace.name} in this directory", file=trace)
    elif not trace.is_file():
        raise IncidentError("trace file not found", file=trace)
    try:
        return load_instances(trace)
    except ScenarioError as e:
        raise IncidentError(e.reason, file=e.file or trace, line=e.line, field=e.field) from None
    except HarnessError as e:
        raise IncidentError(str(e), file=trace) from None
    except RecursionError:
        raise IncidentError("the trace is nested too deeply to read", file=trace) from None
    except Exception as e:  # a foreign file the OTLP reader trips on: still a clear error
        raise IncidentError(
            f"not an OTLP JSON-lines trace export ({type(e).__name__}: {e})", file=trace
        ) from None


def load_conversation(trace: Path, conversation_id: str | None = None) -> Instance:
    """The Instance of one call in ``trace`` (a JSON-lines export or an instance directory).

    ``conversation_id`` picks a call in a file holding several: its id, or the redacted
    form an error listed. Raises :class:`IncidentError` naming ``--conversation-id``.
    """
    trace = Path(trace)
    instances = _read(trace)
    ids = list(instances)
    if conversation_id is not None:
        if conversation_id in instances:
            return instances[conversation_id]
        listed = [i for i in ids if shown_id(i) == conversation_id]
        if len(listed) == 1:
            return instances[listed[0]]
        if len(listed) > 1:
            raise IncidentError(
                f"{conversation_id!r} is the listed form of {len(listed)} conversations; "
                "give the full id as the export writes it",
                file=trace,
                field=OPTION,
            )
        raise IncidentError(
            f"no conversation {shown_id(conversation_id)!r} in the file; it holds "
            f"{len(ids)}: {_listing(ids)}",
            file=trace,
            field=OPTION,
        )
    if len(ids) > 1:
        raise IncidentError(
            f"{len(ids)} conversations in the file ({_listing(ids)}); pick one with {OPTION} ID",
            file=trace,
            field=OPTION,
        )
    return next(iter(instances.values()))
