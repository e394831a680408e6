"""A production call (or a saved synthetic call) in, a regression scenario out.

:func:`import_incident` is a pipeline; each step is a module of its own:

1. **load** one conversation of the trace export (:mod:`~harness.incident.conversations`)
   and **check** it: spans, no parent cycle;
2. **read turns**: the caller's turns and the agent's replies (:mod:`~harness.incident.turns`);
3. **place the recording** on the trace's clock (:mod:`~harness.incident.recording`);
4. **classify**: score the call, find the failed checks, pick the rule
   (:mod:`~harness.incident.score`, :mod:`~harness.incident.classify`);
5. **learn & redact**: teach the redactor the whole call (:mod:`~harness.incident.learn`);
6. **build turns**: redacted text, timing, recorded audio (:mod:`~harness.incident.build`);
7. **derive expectations**: what the replay asserts (:mod:`~harness.incident.expect`);
8. **render** the fixture (:mod:`~harness.incident.fixture`), its header saying where it
   came from (:mod:`~harness.incident.header`), and parse it back;
9. **write** ``<out_dir>/<ID>.yaml`` and ``<audio_dir>/<ID>/turn-N.wav`` in one staged write
   (:func:`harness.core.files.staged_directory`): a failed import leaves nothing behind,
   and a failed overwrite leaves the old fixture.

Everything is computed in memory first; nothing is written before step 9.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.call.rundir import CallDir
from harness.core.errors import ScenarioError
from harness.core.files import atomic_write, made_parents, staged_directory
from harness.evaluators.base import Score
from harness.incident.build import OFFLINE_VOICE, TurnClip, build_turns, mark_findings
from harness.incident.classify import RuleTable, load_rules
from harness.incident.conversations import load_conversation, shown_id
from harness.incident.errors import IncidentError
from harness.incident.estimate import Recording, write_wav
from harness.incident.expect import call_timeouts, derive_expectations, parse_expected
from harness.incident.filenames import safe_id
from harness.incident.fixture import FixtureSpec, check_fixture, render_fixture
from harness.incident.header import Provenance, header_lines, incident_mapping
from harness.incident.learn import learn_call, make_redactor
from harness.incident.recording import place_recording
from harness.incident.redact import RedactionConfig, Redactor
from harness.incident.result import ImportResult
from harness.incident.score import judge
from harness.incident.turns import CallerTurns, read_turns
from harness.trace import conventions as c
from harness.trace.instance import WORD_DURATION, WORD_EVENT, WORD_TEXT, Instance

__all__ = [
    "OFFLINE_VOICE",
    "WORD_DURATION",
    "WORD_EVENT",
    "WORD_TEXT",
    "ImportResult",
    "find_fixture",
    "from_run",
    "import_incident",
]

log = logging.getLogger("harness.incident")

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ID_MAX = 100  # a file name (id + ".yaml") stays far below the file system's 255 bytes
_NO_RECORDING_RATE = 16000
_NS = 1_000_000_000


# --- 1. load and check ----------------------------------------------------------------------


def _check_arguments(incident_id: str | None, caller_channel: int | None) -> None:
    """Refuse bad arguments before reading anything."""
    if incident_id is not None and not _ID_PATTERN.match(incident_id):
        raise IncidentError(
            f"{incident_id!r}: use letters, digits, '.', '_' and '-' (e.g. INC-2041)",
            field="--id",
        )
    if incident_id is not None and len(incident_id) > _ID_MAX:
        raise IncidentError(
            f"{len(incident_id)} characters; use at most {_ID_MAX} (e.g. INC-2041)",
            field="--id",
        )
    if caller_channel is not None and (
        isinstance(caller_channel, bool)
        or not isinstance(caller_channel, int)
        or caller_channel < 0
    ):
        raise IncidentError(f"caller_channel={caller_channel!r}: a channel index, 0 or more")


def _load(trace: Path, conversation_id: str | None) -> Instance:
    """One conversation of the trace, with spans and a tree a fixture can replay: a trace
    whose parent links loop was cut to be read (:mod:`harness.trace.validate`), but a
    fixture must not replay a guessed tree."""
    instance = load_conversation(trace, conversation_id)
    if not instance.spans:
        raise IncidentError("no spans for this conversation", file=trace)
    for e in instance.data_errors:
        if e.kind == "parent_cycle":
            raise IncidentError(
                f"span {e.span_id} ({e.span!r}) is its own ancestor: the parent links form a cycle",
                file=trace,
            )
    return instance


def _check_turns(read: CallerTurns, instance: Instance, trace: Path) -> None:
    if not read.turns:
        raise IncidentError(
            f"no user turns: conversation {shown_id(instance.conversation_id)!r} has no "
            f"{c.SPAN_USER_TURN!r} spans"
            + ("" if read.from_side_file else " (and no caller side-file)")
            + ", so there is nothing for a caller to say",
            file=trace,
        )


def _check_something_to_say(read: CallerTurns, rec: Recording | None, trace: Path) -> None:
    if rec is None and not any(t.text and t.text.strip() for t in read.turns if t.kind == "say"):
        raise IncidentError(
            f"no user transcripts ({c.LK_PII_USER_TRANSCRIPT}) and no recording: nothing "
            "for a caller to say",
            file=trace,
        )


# --- 5. learn & redact; the incident's name ---------------------------------------------------


def _redactor(
    config: RedactionConfig | None, redact: bool, occurred: datetime, warnings: list[str]
) -> Redactor:
    """The redactor of this call (dates judged against the call's day)."""
    config = config or RedactionConfig()
    if config.reference_date is None:
        config = replace(config, reference_date=occurred.date())
    if not redact:
        warnings.append(
            "PII redaction is OFF: the fixture and its audio may hold personal data; "
            "do not commit them"
        )
    return make_redactor(config, redact)


def _default_id(when: datetime, trace_id: str | None, cid: str) -> str:
    digest = hashlib.sha256(f"{trace_id}\n{cid}".encode()).hexdigest()[:6]
    return f"INC-{when:%Y%m%d}-{digest}"


def _name(
    incident_id: str | None,
    instance: Instance,
    occurred: datetime,
    redactor: Redactor,
    redact: bool,
    warnings: list[str],
) -> str:
    """The incident's id: the one given, its personal data replaced by kind names (it names
    files), or one made of the call's date and ids."""
    if incident_id is None:
        return _default_id(occurred, instance.trace_id, instance.conversation_id)
    if not redact:
        return incident_id
    named, kinds = safe_id(incident_id, redactor)
    if kinds:
        warnings.append(
            f"the incident id held personal data ({', '.join(kinds)}); the fixture is "
            f"named {named} instead"
        )
    return named


# --- 9. write -----------------------------------------------------------------------------------


def _refuse_existing(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            raise IncidentError(
                "already exists; pass another --id, or --force to overwrite it", file=p
            )


def _write(
    scenario_path: Path,
    text: str,
    audio_dir: Path,
    clips: Sequence[TurnClip],
    rate: int,
    overwrite: bool,
) -> None:
    """The turn WAVs as the whole new ``audio_dir`` (none: no folder), then the YAML that
    names them; on any failure the old fixture stays and nothing new is left."""
    try:
        with (
            made_parents(scenario_path),
            staged_directory(audio_dir, replace=overwrite, drop_empty=True) as stage,
        ):
            for clip in clips:
                write_wav(stage.path / clip.name, clip.samples, rate)
            stage.commit()
            atomic_write(scenario_path, text)
    except OSError as e:
        if isinstance(e, FileExistsError) and e.filename == str(audio_dir):
            message = "already exists; pass --force to overwrite it"
            raise IncidentError(message, file=audio_dir) from None
        raise IncidentError(f"cannot write the fixture: {e}", file=e.filename) from None


# --- the pipeline -------------------------------------------------------------------------------


def import_incident(
    trace: Path,
    *,
    recording: Path | None = None,
    caller_channel: int | None = None,
    incident_id: str | None = None,
    out_dir: Path = Path("scenarios/incidents"),
    audio_dir: Path = Path("audio_fixtures/incidents"),
    redact: bool = True,
    redaction_config: RedactionConfig | None = None,
    conversation_id: str | None = None,
    agent_name: str | None = None,
    recording_start: float | None = None,
    expected: Any = None,
    scores: Sequence[Score] | None = None,
    rules: RuleTable | None = None,
    overwrite: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Turn one call's trace (and recording) into ``<out_dir>/<ID>.yaml`` and its turn WAVs.

    ``trace``: an OTLP JSON-lines export, or an instance directory (``trace.jsonl`` and
    ``caller.json``). ``conversation_id`` picks a call in a file holding several (its id,
    or the redacted form the error listing them printed; ``--conversation-id``).
    ``recording``: the call's WAV (default: the instance's own recording, if any);
    ``caller_channel`` picks its caller channel (default 0; a mono file is used as is).
    ``recording_start``: the epoch time of the recording's first sample; without it, the
    side-file's ``started_at``, else the session's start refined by lining the caller's
    audio up with the ``user_turn`` spans.
    ``expected``: the call's expected end state (anything
    :meth:`harness.evaluators.task.EndState.parse` reads), for ``task_completion``.
    ``scores``: Scores already computed for this call (then nothing is re-evaluated).
    ``rules``: a classification table other than the built-in one.
    An ``incident_id`` holding personal data is renamed (``sip_5558675309`` ->
    ``sip_PHONE``, with a warning): it names files.
    Raises :class:`IncidentError`; nothing is written then.
    """
    trace = Path(trace)
    out_dir, audio_root = Path(out_dir), Path(audio_dir)
    warnings: list[str] = []
    _check_arguments(incident_id, caller_channel)
    table = rules or load_rules()

    instance = _load(trace, conversation_id)
    read = read_turns(instance)
    _check_turns(read, instance, trace)
    placement = place_recording(instance, recording, caller_channel, recording_start, warnings)
    rec = placement.recording if placement is not None else None
    _check_something_to_say(read, rec, trace)
    assessment = judge(instance, scores, expected, rec, table, warnings)
    findings, classification = assessment.findings, assessment.classification

    occurred = datetime.fromtimestamp(min(s.start_ns for s in instance.spans) / _NS, UTC)
    imported = (now or datetime.now(UTC)).astimezone(UTC)
    redactor = _redactor(redaction_config, redact, occurred, warnings)
    learn_call(redactor, read, instance)
    cid = redactor.redact(instance.conversation_id, speaker="system").text
    incident_id = _name(incident_id, instance, occurred, redactor, redact, warnings)
    scenario_path = out_dir / f"{incident_id}.yaml"
    turn_audio_dir = audio_root / incident_id
    if not overwrite:
        _refuse_existing(scenario_path, turn_audio_dir)

    built = build_turns(
        read, rec, redactor, redactor.config.audio_fill, out_dir, turn_audio_dir, warnings
    )
    if not built.turns:
        raise IncidentError("no caller turn could be imported", file=trace)
    built = mark_findings(built, findings, read.greeting)
    expectations = derive_expectations(
        findings, instance, parse_expected(expected), redactor, warnings
    )
    footer: tuple[str, ...] = ()
    if read.turns[-1].agent_said:
        said = redactor.redact(read.turns[-1].agent_said, speaker="agent").text
        footer = (f"agent: {json.dumps(said, ensure_ascii=False)}",)
    counts = dict(redactor.counts)  # every string is redacted by now

    src = Provenance(incident_id, instance.trace_id, cid, occurred, imported)
    header = header_lines(
        src,
        classification,
        findings,
        expectations.unasserted,
        redactor,
        counts if redact else None,
        placement,
        built.estimate,
    )
    agent = agent_name or instance.agent_name
    spec = FixtureSpec(
        id=incident_id,
        description=f"Regression test for incident {incident_id} "
        f"({classification.severity}, {classification.failing_layer}): "
        f"{classification.rationale}",
        header=tuple(header),
        incident=incident_mapping(src, classification),
        agent=agent,
        agent_comment=None
        if agent
        else "agent name not in the trace: add `agent: <agent_name>` or pass --agent-name",
        agent_speaks_first=read.greeting is not None,
        voice=OFFLINE_VOICE if rec is None else None,
        expect=expectations.expect,
        expect_notes=expectations.notes,
        timeouts=call_timeouts(read.turns),
        turns=built.turns,
        footer=footer,
    )
    text = render_fixture(spec)
    try:
        check_fixture(text, scenario_path)
    except ScenarioError as e:  # a bug here, not in the trace: say so plainly
        raise IncidentError(f"the generated fixture does not parse: {e}", file=trace) from None

    rate = rec.rate if rec is not None else _NO_RECORDING_RATE
    _write(scenario_path, text, turn_audio_dir, built.clips, rate, overwrite)
    result = ImportResult(
        incident_id=incident_id,
        scenario_path=scenario_path,
        audio_paths=built.audio_paths,
        classification=classification,
        redactions=counts,
        warnings=tuple(redactor.redact(w, count=False, speaker="system").text for w in warnings),
        source_trace_id=src.trace_id,
        conversation_id=cid,
        text=text,
    )
    log.info("%s", result.describe())
    return result


def find_fixture(incident: str | Path, out_dir: Path = Path("scenarios/incidents")) -> Path:
    """The fixture file of an incident: an id (``INC-20251113-099336``) looked up in
    ``out_dir``, or a path to the YAML itself."""
    p = Path(incident)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise IncidentError("no such incident fixture", file=p)
        return p
    candidate = Path(out_dir) / f"{incident}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(x.stem for x in Path(out_dir).glob("*.yaml")) if Path(out_dir).is_dir() else []
    near = difflib.get_close_matches(str(incident), known, n=1)
    hint = f"; did you mean {near[0]}?" if near else (f" ({len(known)} incidents there)")
    raise IncidentError(f"no incident {str(incident)!r} in {out_dir}{hint}", file=candidate)


def from_run(run_dir: Path, **kwargs: Any) -> ImportResult:
    """Import a saved synthetic call: ``trace.jsonl``, ``caller.json`` and ``recording.wav``
    in ``run_dir`` (the caller on channel 0). Keywords as :func:`import_incident`."""
    run = Path(run_dir)
    if not run.is_dir():
        raise IncidentError("not a run directory", file=run)
    call = CallDir(run)
    trace = call.trace
    if not trace.is_file():
        raise IncidentError(
            f"no {trace.name}: this call was not traced, so there is nothing to import",
            file=run,
        )
    if kwargs.get("recording") is None and call.recording.is_file():
        kwargs["recording"] = call.recording
    kwargs.setdefault("caller_channel", 0)
    return import_incident(trace, **kwargs)
