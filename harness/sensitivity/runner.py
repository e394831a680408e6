"""Mutation testing for a voice suite: the suite once clean and once per fault, each fault
run stopped at the first call that gives it away.

For every call, in order, a run is *alarmed* when

- the call broke one of its scenario's expectations, or the agent failed it (left the
  room, never answered): ``expectation``;
- a gate fails over the run's calls so far (the gates file given, else the project's or
  the defaults), with the baseline: ``gate``. The baseline is the ``--baseline`` file
  when one is given, else the clean run's own calls: a fault run is then compared with
  the same suite on the same deployment without the fault.

A broken expectation alone may be a flake (a word misheard on a busy host): the same
scenario is then placed once more, and the alarm stands only if that call raises one too;
one that does not reproduce is kept as a *flake*, and the run goes on. A failed gate needs
no second call: it already rests on its ``min_samples``.

A fault is *caught* by its run's first alarm that stands, after that many calls (the
confirming call included); *missed* when its run places ``calls`` rounds of the suite
without one. The clean run always places every round; each of its alarms that stands is a
false alarm (the baseline gates are not applied to it when it is its own baseline). A call
the harness could not place (infrastructure) is counted as an error and is not an alarm; a
run with nothing but errors is an error.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.gates import GatesConfig, ScoreStore, Verdict, evaluate_gates
from harness.scenario.model import Scenario
from harness.sensitivity.catalogue import Catalogue, Fault

__all__ = [
    "Alarm",
    "CallRecord",
    "RunResult",
    "SensitivityResult",
    "run_sensitivity",
    "scenario_for",
]

CLEAN = "clean"
Status = Literal["caught", "missed", "error", "clean", "false_alarm"]


class _Session(Protocol):
    """What the runner needs of :class:`harness.session.engine.CallSession`."""

    def submit(
        self,
        scenario: Scenario,
        repeat: int = 1,
        *,
        dispatch_metadata: dict | None = None,
        conditions: Any = None,
        label: str | None = None,
    ) -> concurrent.futures.Future[Any]: ...


@dataclass(frozen=True)
class Alarm:
    """What gave a run away: a failed ``gate`` (its name and verdict), or a call that broke
    an ``expectation`` (the scenario and the first broken one)."""

    kind: Literal["gate", "expectation"]
    name: str
    detail: str
    call: int
    """How many calls of the run had been placed when it rang (1-based)."""
    confirmed_at: int | None = None
    """For a broken expectation: the call of the same scenario that raised an alarm again."""

    def describe(self) -> str:
        return f"{self.kind} {self.name}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "detail": self.detail,
            "call": self.call,
            "confirmed_at": self.confirmed_at,
        }


@dataclass(frozen=True)
class CallRecord:
    scenario: str
    repeat: int
    conversation_id: str
    artifacts: str
    verdict: str
    failures: tuple[str, ...]
    error: str | None
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "repeat": self.repeat,
            "conversation_id": self.conversation_id,
            "artifacts": self.artifacts,
            "verdict": self.verdict,
            "failures": list(self.failures),
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class RunResult:
    """One run of the suite: clean (``fault`` None) or with one fault."""

    name: str
    fault: Fault | None
    calls: list[CallRecord] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    flakes: list[Alarm] = field(default_factory=list)
    """Broken expectations that the same scenario, placed again, did not break."""
    verdicts: list[Verdict] = field(default_factory=list)
    errors: int = 0
    store: ScoreStore = field(default_factory=ScoreStore)
    duration_s: float = 0.0

    @property
    def caught_by(self) -> Alarm | None:
        return self.alarms[0] if self.alarms else None

    @property
    def status(self) -> Status:
        placed = len(self.calls) - self.errors
        if self.fault is None:
            return "false_alarm" if self.alarms else ("error" if placed == 0 else "clean")
        if self.alarms:
            return "caught"
        return "error" if placed == 0 else "missed"


@dataclass
class SensitivityResult:
    suite: list[str]
    catalogue: Catalogue
    calls: int
    scale: float
    clean: RunResult
    faults: list[RunResult]
    baseline_source: str
    wall_time_s: float = 0.0
    run_dir: Path | None = None

    @property
    def caught(self) -> int:
        return sum(1 for r in self.faults if r.status == "caught")

    @property
    def passed(self) -> bool:
        """Every fault caught, and no false alarm in the clean run."""
        return self.clean.status == "clean" and all(r.status == "caught" for r in self.faults)


def scenario_for(scenario: Scenario, fault: Fault | None) -> Scenario:
    """The scenario as a fault's run places it: with the fault's caller behaviour on every
    ``say`` turn (and its voice), under an id of its own (``<id>.<fault>``) so its rendered
    audio is not mixed up with the clean scenario's. Unchanged without caller behaviour."""
    if fault is None or fault.caller is None:
        return scenario
    b = fault.caller
    turn_update: dict[str, Any] = {}
    if b.barge_in_ms is not None:
        turn_update["barge_in_ms"] = b.barge_in_ms
    if b.pause_before_ms is not None:
        turn_update["pause_before_ms"] = b.pause_before_ms
    if b.hesitate is not None:
        from harness.scenario.model import Hesitation

        turn_update["hesitate"] = Hesitation(filler=b.hesitate.filler, pause_ms=b.hesitate.pause_ms)
    turns = [t.model_copy(update=turn_update) if t.kind == "say" else t for t in scenario.turns]
    update: dict[str, Any] = {"id": f"{scenario.id}.{fault.id}", "turns": turns}
    if b.voice is not None:
        update["voice"] = b.voice
        turns = [t.model_copy(update={"voice": None}) for t in turns]
        update["turns"] = turns
    out = scenario.model_copy(update=update)
    return out


def _record(outcome: Any) -> CallRecord:
    return CallRecord(
        scenario=outcome.scenario_id,
        repeat=outcome.repeat,
        conversation_id=outcome.conversation_id,
        artifacts=str(outcome.artifacts),
        verdict=outcome.verdict,
        failures=tuple(outcome.failures),
        error=str(outcome.error) if outcome.error is not None else None,
        duration_s=float(outcome.duration_s),
    )


def call_alarm(outcome: Any, call: int, scenario_id: str) -> Alarm | None:
    """The expectation a call broke (its first), or the agent's failure; None for a call
    that passed or could not be placed (infrastructure)."""
    if outcome.verdict == "error":
        return None
    lines = [f for f in outcome.failures if not f.startswith("note:")]
    if outcome.error is not None:
        lines.insert(0, str(outcome.error))
    if not lines:
        return None
    return Alarm("expectation", scenario_id, lines[0], call)


def gate_alarms(
    gates: GatesConfig, store: ScoreStore, baseline: ScoreStore | None, call: int
) -> tuple[list[Verdict], list[Alarm]]:
    verdicts = evaluate_gates(gates, store, baseline)
    alarms = [Alarm("gate", v.name, v.detail, call) for v in verdicts if v.status == "fail"]
    return verdicts, alarms


class _Run:
    """Places one run's calls one at a time, scoring as it goes. ``confirmer`` places the
    second call of a scenario whose expectations broke (None: no second call)."""

    def __init__(
        self,
        session: _Session,
        name: str,
        fault: Fault | None,
        scenarios: Sequence[Scenario],
        *,
        rounds: int,
        gates: GatesConfig,
        baseline: ScoreStore | None,
        scale: float,
        stop_at_alarm: bool,
        progress: Callable[[str], None],
        confirmer: _Session | None = None,
        repeats_used: int | None = None,
    ) -> None:
        self.session = session
        self.confirmer = confirmer
        self.repeats_used = rounds if repeats_used is None else repeats_used
        """Second calls are numbered after the run's repeats (their artifacts apart)."""
        self.result = RunResult(name, fault)
        self.scenarios = scenarios
        self.rounds = rounds
        self.gates = gates
        self.baseline = baseline
        self.scale = scale
        self.stop_at_alarm = stop_at_alarm
        self.progress = progress
        self._seen: set[tuple[str, str]] = set()
        self._again = 0

    def _place(self, session: _Session, base: Scenario, repeat: int) -> Any:
        fault = self.result.fault
        return session.submit(
            scenario_for(base, fault),
            repeat,
            dispatch_metadata=fault.metadata(self.scale) if fault is not None else None,
            conditions=fault.conditions if fault is not None else None,
            label=f"{self.result.name}/{base.id}",
        ).result()

    def _score(self, outcome: Any, base: Scenario) -> list[Alarm] | None:
        """The call's alarms (its broken expectation, the gates now failing); None for a
        call that could not be placed."""
        res = self.result
        res.calls.append(_record(outcome))
        n = len(res.calls)
        if outcome.verdict == "error":
            res.errors += 1
            self.progress(f"{res.name}: call {n} ({base.id}) could not be placed")
            return None
        res.store.add(
            outcome.scores,
            traced=outcome.trace is None or outcome.trace.state != "none",
            data_errors=getattr(outcome, "data_errors", ()),
        )
        found = []
        alarm = call_alarm(outcome, n, base.id)
        if alarm is not None:
            found.append(alarm)
        res.verdicts, gate_found = gate_alarms(self.gates, res.store, self.baseline, n)
        return found + gate_found

    def _confirm(self, found: list[Alarm], base: Scenario) -> list[Alarm]:
        """A broken expectation alone: the same scenario once more. If that call breaks its
        expectations again, the first alarm stands (marked confirmed); if it raises only
        other alarms (a gate), those stand and the first is a flake; if none, it is a
        flake and there is no alarm."""
        if self.confirmer is None or any(a.kind == "gate" for a in found):
            return found
        self._again += 1
        repeat = self.repeats_used + self._again
        again = self._score(self._place(self.confirmer, base, repeat), base) or []
        first = found[0]
        if any((a.kind, a.name) == (first.kind, first.name) for a in again):
            return [replace(first, confirmed_at=len(self.result.calls)), *found[1:], *again]
        self.result.flakes.extend(found)
        self.progress(f"{self.result.name}: did not reproduce: {first.describe()}")
        return again

    def go(self) -> RunResult:
        t0 = time.monotonic()
        res = self.result
        for r in range(1, self.rounds + 1):
            for base in self.scenarios:
                found = self._score(self._place(self.session, base, r), base)
                if not found:
                    continue
                found = self._confirm(found, base)
                for a in found:
                    if (a.kind, a.name) not in self._seen:
                        self._seen.add((a.kind, a.name))
                        res.alarms.append(a)
                if found and self.stop_at_alarm:
                    res.duration_s = time.monotonic() - t0
                    n = len(res.calls)
                    self.progress(f"{res.name}: caught after {n} calls by {found[0].describe()}")
                    return res
        res.duration_s = time.monotonic() - t0
        if res.fault is not None:
            self.progress(f"{res.name}: missed in {len(res.calls)} calls")
        return res


def run_sensitivity(
    session: _Session,
    scenarios: Sequence[Scenario],
    catalogue: Catalogue,
    *,
    calls: int,
    gates: GatesConfig,
    baseline: ScoreStore | None = None,
    scale: float = 1.0,
    concurrency: int = 1,
    progress: Callable[[str], None] = lambda _: None,
    on_clean: Callable[[RunResult], None] | None = None,
) -> SensitivityResult:
    """The clean run (``calls`` rounds of the suite), then every fault's run (up to
    ``calls`` rounds, stopped at its first alarm), ``concurrency`` runs at a time.
    ``on_clean`` sees the clean run before the faults' runs start (to save it as the
    baseline)."""
    if calls < 1:
        raise ValueError(f"calls={calls!r}: at least one round of the suite")
    if not scenarios:
        raise ValueError("no scenarios: the suite is empty")
    t0 = time.monotonic()
    kw = {"gates": gates, "scale": scale, "progress": progress}
    progress(f"clean run: {calls} rounds of {len(scenarios)} scenarios")
    clean = _clean_run(session, scenarios, calls, baseline, concurrency, **kw)
    if on_clean is not None:
        on_clean(clean)
    against = baseline if baseline is not None else clean.store
    lock = threading.Lock()
    done: dict[str, RunResult] = {}

    def one(fault: Fault) -> None:
        progress(f"{fault.id}: {fault.injected(scale)}")
        run = _Run(
            session,
            fault.id,
            fault,
            scenarios,
            rounds=calls,
            baseline=against,
            stop_at_alarm=True,
            confirmer=session,
            **kw,
        ).go()
        with lock:
            done[fault.id] = run

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for f in [pool.submit(one, fault) for fault in catalogue.faults]:
            f.result()
    return SensitivityResult(
        suite=[s.id for s in scenarios],
        catalogue=catalogue,
        calls=calls,
        scale=scale,
        clean=clean,
        faults=[done[f.id] for f in catalogue.faults],
        baseline_source="the clean run" if baseline is None else "the baseline file",
        wall_time_s=time.monotonic() - t0,
    )


def _clean_run(
    session: _Session,
    scenarios: Sequence[Scenario],
    rounds: int,
    baseline: ScoreStore | None,
    concurrency: int,
    *,
    gates: GatesConfig,
    scale: float,
    progress: Callable[[str], None],
) -> RunResult:
    """Every call of the clean run at once (the session runs ``concurrency`` at a time),
    then scored in order, as a fault run is, for its false alarms."""
    t0 = time.monotonic()
    futures = [
        (s, session.submit(s, r, label=f"{CLEAN}/{s.id}"))
        for r in range(1, rounds + 1)
        for s in scenarios
    ]
    outcomes = [(s, f.result()) for s, f in futures]
    run = _Run(
        _Replay(outcomes),
        CLEAN,
        None,
        [s for s, _ in outcomes],
        rounds=1,  # the outcomes, each once, in the order they were placed
        gates=gates,
        baseline=baseline,
        scale=scale,
        stop_at_alarm=False,
        progress=progress,
        confirmer=session,
        repeats_used=rounds,
    ).go()
    run.duration_s = time.monotonic() - t0
    n = len(run.calls)
    if run.alarms:
        progress(f"clean run: {len(run.alarms)} false alarms in {n} calls")
    else:
        progress(f"clean run: no alarm in {n} calls")
    return run


class _Replay:
    """Hands back outcomes already placed, in order, as a session would."""

    def __init__(self, outcomes: list[tuple[Scenario, Any]]) -> None:
        self._outcomes = [o for _, o in outcomes]
        self._next = 0

    def submit(self, scenario: Scenario, repeat: int = 1, **_: Any):
        f: concurrent.futures.Future[Any] = concurrent.futures.Future()
        f.set_result(self._outcomes[self._next])
        self._next += 1
        return f
