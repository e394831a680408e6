"""The ``harness`` command: wiring over the library, no logic of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.call.rundir import NAMES
from harness.core.errors import HarnessError, InfrastructureError, ScenarioError
from harness.core.files import atomic_write
from harness.gates.scoring import gates_config, gates_failed, gates_report, session_verdicts
from harness.report import report_at_end

if TYPE_CHECKING:
    from harness.session.config import SessionConfig


def _progress(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def _collector(args: argparse.Namespace) -> dict[str, object]:
    from harness.session.config import parse_collector_address

    if not getattr(args, "collector", None):
        return {}
    try:
        host, port = parse_collector_address(args.collector)
    except ValueError as exc:
        raise ScenarioError(f"--collector {exc}") from None
    return {"collector_host": host, "collector_port": port}


def _session_config(args: argparse.Namespace, **settings: object) -> SessionConfig:
    """The session every calling command opens: where LiveKit and the agent are, where the
    traces arrive and the artifacts go; ``settings`` are the command's own."""
    from harness.session.config import SessionConfig

    return SessionConfig(
        livekit_url=args.livekit_url,
        agent_name=args.agent_name,
        agent_cmd=args.agent_cmd,
        artifacts=Path(args.artifacts),
        **_collector(args),
        **settings,  # type: ignore[arg-type]
    )


def cmd_run(args: argparse.Namespace) -> int:
    from harness.scenario.model import load_scenarios, resolve_agent_name
    from harness.session.engine import CallSession, Schedule
    from harness.session.summary import call_table

    scenarios = load_scenarios(args.paths)
    if not scenarios:
        raise ScenarioError("no scenario files found", file=" ".join(args.paths))
    for s in scenarios:
        resolve_agent_name(s, args.agent_name)
    config = _session_config(args, calls=args.calls, concurrency=args.concurrency)
    calls = [(s, r) for s in scenarios for r in range(1, args.calls + 1)]
    _progress(f"{len(calls)} calls from {len(scenarios)} scenarios, run {config.run_id}")
    with CallSession(config, on_progress=_progress) as session:
        schedule = Schedule(session)
        schedule.ensure(calls)
        outcomes = [schedule.outcome(s, r) for s, r in calls]
        store = session.scores.store
    print(call_table(outcomes))
    for line in session.trace_report.lines() if session.trace_report else ():
        print(f"traces: {line}")
    verdicts = session_verdicts(store, gates_config(args.gates), _baseline(args.baseline))
    print()
    print(gates_report(verdicts))
    print(report_at_end(config.run_dir, store=store, verdicts=verdicts, scenarios=scenarios))
    print(f"artifacts: {config.run_dir}")
    if any(o.verdict == "error" for o in outcomes):
        return 2
    failed = any(o.verdict == "fail" for o in outcomes)
    return 1 if failed or (args.gate and gates_failed(verdicts)) else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.scenario.model import load_scenario, resolve_agent_name
    from harness.session.engine import CallSession
    from harness.session.sweep import sweep_conditions, sweep_table

    scenario = load_scenario(args.scenario)
    resolve_agent_name(scenario, args.agent_name)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    config = _session_config(args, concurrency=args.concurrency)
    with CallSession(config, on_progress=_progress) as session:
        rows = sweep_conditions(session, scenario, conditions, calls=args.calls)
    print(sweep_table(rows))
    print(report_at_end(config.run_dir, sweep=rows))
    print(f"artifacts: {config.run_dir}")
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from harness.sensitivity.command import sensitivity

    config = _session_config(args, calls=args.calls, concurrency=args.concurrency)
    out = sensitivity(
        config,
        args.paths,
        args.catalogue,
        gates_file=args.gates,
        baseline_file=args.baseline,
        scale=args.scale,
        faults=[f.strip() for f in (args.faults or "").split(",") if f.strip()],
        junitxml=args.junitxml,
        progress=_progress,
    )
    print(out.table)
    print(f"results: {out.json_path}")
    if out.baseline_path is not None:
        print(f"clean run as a baseline: {out.baseline_path}")
    if out.junit_path is not None:
        print(f"junit: {out.junit_path}")
    print(out.report)
    return 0 if out.result.passed else 1


def cmd_load(args: argparse.Namespace) -> int:
    from harness.load import LoadConfig, hold_verdict, load, parse_duration, parse_ramp

    load_config = LoadConfig(
        ramp=parse_ramp(args.ramp),
        step_s=parse_duration(args.step_duration),
        knee_factor=args.knee_factor,
        stop_at_knee=not args.keep_going,
    )
    config = _session_config(args)
    out = load(config, args.paths, load_config, gates_file=args.gates, progress=_progress)
    print(out.table)
    print(f"results: {out.json_path}")
    print(out.report)
    code, line = hold_verdict(out.result, args.hold)
    if line:
        print(line)
    return code


def cmd_merge(args: argparse.Namespace) -> int:
    from harness.load.merge import merged_load_text
    from harness.session.merge import merge_runs

    merged = merge_runs(args.runs)
    for line in merged.lines():
        print(line)
    gates = gates_config(args.gates)
    verdicts = session_verdicts(merged.store, gates, _baseline(args.baseline))
    print(gates_report(verdicts))
    load_text = merged_load_text(args.runs, gates)
    if load_text is not None:
        print()
        print(load_text)
    if args.out:
        from harness.gates.baseline import save_baseline

        meta = {"source": "harness merge", "runs": [str(r) for r in args.runs]}
        print(f"merged scores written to {save_baseline(merged.store, args.out, meta=meta)}")
    return 1 if gates_failed(verdicts) else 0


def cmd_incident_import(args: argparse.Namespace) -> int:
    from harness.incident import RedactionConfig, import_incident

    trace = args.trace
    if args.candidate:
        from harness.monitor.commands import candidate_trace
        from harness.monitor.store import MonitorStore

        with MonitorStore(Path(args.state_dir) / "monitor.sqlite3") as store:
            trace = str(candidate_trace(store, args.candidate))
        args.id = args.id or args.candidate
    if not trace:
        raise ScenarioError("give the trace file, or --candidate ID (see harness incident list)")
    if args.no_redact:
        _progress("WARNING: --no-redact: personal data in the trace and recording is written as is")
    result = import_incident(
        Path(trace),
        recording=Path(args.recording) if args.recording else None,
        caller_channel=args.caller_channel,
        incident_id=args.id,
        out_dir=Path(args.out),
        audio_dir=Path(args.audio_dir),
        redact=not args.no_redact,
        redaction_config=RedactionConfig(
            names=tuple(args.redact_name),
            keep_names=tuple(args.keep_name),
            replay_values=_replay_values(args.replay_value),
        ),
        expected=_json_arg(args.expected),
        conversation_id=args.conversation_id,
        overwrite=args.force,
    )
    print(result.describe())
    return 0


def cmd_incident_from_run(args: argparse.Namespace) -> int:
    from harness.incident import from_run

    result = from_run(
        Path(args.run_dir),
        incident_id=args.id,
        out_dir=Path(args.out),
        audio_dir=Path(args.audio_dir),
        overwrite=args.force,
    )
    print(result.describe())
    return 0


def cmd_incident_replay(args: argparse.Namespace) -> int:
    from harness.incident import find_fixture

    args.paths = [str(find_fixture(args.incident, Path(args.out)))]
    return cmd_run(args)


def _replay_values(items: list[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        kind, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ScenarioError(
                f"--replay-value {item!r}: write KIND=VALUE, e.g. NAME='Anna Smith'"
            )
        out[kind.strip().upper()] = (*out.get(kind.strip().upper(), ()), value.strip())
    return out


def _json_arg(text: str | None):
    import json

    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"--expected is not JSON: {exc}") from None


def _baseline(path: str | None):
    from harness.gates.baseline import load_baseline

    return load_baseline(path) if path else None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.gates.scoring import evaluate_path

    result = evaluate_path(args.path)
    if result.calls == 0:
        raise ScenarioError(f"no saved instances ({NAMES.trace}) found", file=args.path)
    print(f"{result.calls} calls from {args.path}")
    for line in result.lines():
        print(line)
    verdicts = session_verdicts(result.store, gates_config(args.gates), _baseline(args.baseline))
    print(gates_report(verdicts))
    print(report_at_end(args.path, store=result.store, verdicts=verdicts))
    return 1 if gates_failed(verdicts) else 0


def cmd_gates_export(args: argparse.Namespace) -> int:
    from harness.gates import prometheus_rules

    rules = prometheus_rules(
        gates_config(args.gates),
        window=args.window,
        source=args.source,
        monitor_rules=args.monitor_rules,
    )
    if args.out:
        atomic_write(args.out, rules)
        _progress(f"wrote Prometheus rules to {args.out}")
    else:
        print(rules, end="")
    return 0


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from harness.gates.baseline import save_run_baseline

    path, result = save_run_baseline(args.run, args.out)
    for line in result.lines():
        print(line)
    print(f"baseline of {result.calls} calls written to {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import write_perfetto, write_report

    if args.format == "perfetto":
        path = write_perfetto(args.path, out=args.out)
    else:
        gates = gates_config(args.gates)
        path = write_report(args.path, out=args.out, gates=gates, baseline=_baseline(args.baseline))
    print(f"report: {path}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from harness.report.tree import render_tree
    from harness.trace.otlp import load_instance

    print(render_tree(load_instance(args.path, args.conversation), everything=args.all))
    return 0


def cmd_audio_render(args: argparse.Namespace) -> int:
    from harness.plan.render import render_scenario_audio

    render_scenario_audio(args.scenario, args.out, conditions=args.conditions, seed=args.seed)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from harness_instrument.launcher import main as launch

    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    return launch(
        (["--service-name", args.service_name] if args.service_name else []) + ["--", *cmd]
    )


def _monitor(args: argparse.Namespace, *, scenarios: bool) -> object:
    from harness.monitor.commands import monitor_config
    from harness.monitor.runner import Monitor

    config = monitor_config(
        scenario_paths=args.paths if scenarios else (),
        every=getattr(args, "every", None),
        cron=getattr(args, "cron", None),
        once=getattr(args, "once", False),
        gates_path=args.gates,
        state_dir=args.state_dir,
        windows=args.windows,
        alert_window=args.alert_window,
        channels=args.channel,
        livekit_url=getattr(args, "livekit_url", None),
        agent_name=getattr(args, "agent_name", None),
        calls=getattr(args, "calls", 1),
        concurrency=getattr(args, "concurrency", 1),
        collector=args.listen,
        metrics=args.metrics,
        retention=args.retention,
        repeat_interval=args.repeat_interval,
        production=not getattr(args, "no_production", False),
        grace=args.grace,
        agent_version=getattr(args, "agent_version", None),
        environment=getattr(args, "environment", None),
        retries=getattr(args, "retries", 2),
        backoff=getattr(args, "backoff", "2s"),
        tick=args.tick,
    )
    return Monitor(config, progress=_progress)


def cmd_monitor_run(args: argparse.Namespace) -> int:
    from harness.monitor.commands import once_exit_code, window_table

    monitor = _monitor(args, scenarios=True)
    with monitor:
        if not args.once:
            monitor.run_forever()
            return 0
        result = monitor.run_once()
        reports = monitor.evaluate(__import__("time").time())
    for rep in reports:
        if rep.source == "synthetic" and rep.window == monitor.config.alert_spec:
            print(window_table(rep))
    return once_exit_code(result, reports, monitor.config.alert_spec.name)


def cmd_monitor_ingest(args: argparse.Namespace) -> int:
    monitor = _monitor(args, scenarios=False)
    with monitor:
        monitor.run_forever()
    return 0


def cmd_monitor_compare(args: argparse.Namespace) -> int:
    from harness.monitor.commands import compare_versions
    from harness.monitor.store import MonitorStore

    with MonitorStore(Path(args.state_dir) / "monitor.sqlite3") as store:
        print(
            compare_versions(
                store,
                gates_config(args.gates),
                args.version_a,
                args.version_b,
                window=args.window,
                source=args.source,
            )
        )
    return 0


def cmd_monitor_status(args: argparse.Namespace) -> int:
    from harness.monitor.commands import status_text
    from harness.monitor.store import MonitorStore

    with MonitorStore(Path(args.state_dir) / "monitor.sqlite3") as store:
        print(status_text(store))
    return 0


def cmd_incident_list(args: argparse.Namespace) -> int:
    from harness.monitor.commands import candidates_table
    from harness.monitor.store import MonitorStore

    with MonitorStore(Path(args.state_dir) / "monitor.sqlite3") as store:
        print(candidates_table(store))
    return 0


def _add_monitor_options(p: argparse.ArgumentParser, *, listen_default: str) -> None:
    p.add_argument("--state-dir", default=".harness/monitor", help="store and artifacts")
    p.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    p.add_argument("--windows", default="15m,1h,24h", help="rolling windows (default 15m,1h,24h)")
    p.add_argument(
        "--alert-window", default=None, help="the window alerts watch (default: shortest)"
    )
    p.add_argument(
        "--channel",
        action="append",
        default=[],
        help="alert channel: webhook:URL, slack:URL or alertmanager:URL (repeatable)",
    )
    p.add_argument("--listen", default=listen_default, help="OTLP/HTTP receiver address")
    p.add_argument("--metrics", default="127.0.0.1:9464", help="/metrics address ('' for none)")
    p.add_argument("--retention", default="30d", help="keep calls this long (default 30d)")
    p.add_argument("--repeat-interval", default="4h", help="re-notify a firing alert after this")
    p.add_argument("--grace", default="30s", help="wait this long for late workflow spans")
    p.add_argument("--tick", default="5s", help="evaluate windows and alerts this often")


def _add_session_options(p: argparse.ArgumentParser) -> None:
    """Where LiveKit and the agent are, where traces arrive and artifacts go: the options
    of every command that places calls (read back by ``_session_config``)."""
    p.add_argument("--livekit-url", default=None, help="default: LIVEKIT_URL, else local")
    p.add_argument("--agent-name", default=None, help="override each scenario's `agent`")
    p.add_argument("--agent-cmd", default=None, help="start this agent worker for the run")
    p.add_argument(
        "--collector",
        default=None,
        metavar="ADDRESS",
        help="trace receiver address, HOST:PORT or :PORT (default: a free loopback port)",
    )
    p.add_argument("--artifacts", default=".harness/runs", help="artifacts directory")


def _add_call_options(p: argparse.ArgumentParser) -> None:
    _add_session_options(p)
    p.add_argument("--calls", type=int, default=1, help="repeat each scenario N times")
    p.add_argument("--concurrency", type=int, default=1, help="run up to K calls at once")
    p.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    p.add_argument("--baseline", default=None, help="baseline file for baseline gates")
    p.add_argument("--gate", action="store_true", help="exit non-zero when a gate fails")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Synthetic-call regression tests for LiveKit voice agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run scenarios as real calls and print a per-call table")
    run.add_argument("paths", nargs="+", help="scenario files or directories")
    _add_call_options(run)
    run.set_defaults(func=cmd_run)

    sw = sub.add_parser("sweep", help="one scenario under several audio conditions")
    sw.add_argument("scenario", help="a scenario file")
    sw.add_argument(
        "--conditions",
        default="clean,quiet_office,noisy_street_5db,bad_cell",
        help="comma-separated presets (default: %(default)s)",
    )
    sw.add_argument("--calls", type=int, default=1, help="calls per condition")
    sw.add_argument("--concurrency", type=int, default=2, help="run up to K calls at once")
    _add_session_options(sw)
    sw.set_defaults(func=cmd_sweep)

    sens = sub.add_parser(
        "sensitivity",
        help="mutation testing: the suite clean and once per fault of a catalogue",
        description="Run the suite once clean and once per fault of the catalogue (the "
        'agent\'s own fault switches, sent as dispatch metadata {"faults": {...}}, or audio '
        "conditions and caller behaviour the harness controls), each fault run stopped at "
        "its first failed gate or broken expectation; print per fault whether it was caught, "
        "by what and after how many calls, and the score with the clean run's false alarms.",
    )
    sens.add_argument("paths", nargs="+", help="scenario files or directories (the suite)")
    sens.add_argument("--catalogue", required=True, help="the fault catalogue (YAML)")
    sens.add_argument("--faults", default=None, help="only these faults (comma-separated ids)")
    sens.add_argument(
        "--scale", type=float, default=1.0, help="multiply each fault's magnitude (0.5: half)"
    )
    sens.add_argument("--junitxml", default=None, help="also write the results as JUnit XML")
    _add_session_options(sens)
    sens.add_argument(
        "--calls", type=int, default=2, help="rounds of the suite per run, at most (default 2)"
    )
    sens.add_argument("--concurrency", type=int, default=1, help="run up to K calls at once")
    sens.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    sens.add_argument(
        "--baseline", default=None, help="baseline file (default: the clean run's calls)"
    )
    sens.set_defaults(func=cmd_sensitivity)

    ld = sub.add_parser(
        "load",
        help="a load test: real calls at each concurrency level of a ramp, and the knee",
        description="Keep N real calls going for --step-duration at each level N of --ramp; "
        "per step print the gate verdicts, the p50/p90/p99 caller-measured response latency "
        "and what the harness itself cost (caller-side CPU per call-minute, event-loop lag, "
        "frame underruns, host CPU pressure; a step where the rig was the bottleneck is "
        "marked HARNESS-LIMITED); then the knee: the first step where a gate fails or p90 "
        f"exceeds --knee-factor times step 1's. Results: {NAMES.load} and the run's report.",
    )
    ld.add_argument("paths", nargs="+", help="scenario files or directories (placed in turn)")
    ld.add_argument(
        "--ramp", default="1,2,4,8,16", help="concurrency levels (default: %(default)s)"
    )
    ld.add_argument(
        "--step-duration", default="2m", help="how long each level lasts (default: %(default)s)"
    )
    ld.add_argument(
        "--knee-factor",
        type=float,
        default=2.0,
        help="knee when p90 exceeds this multiple of step 1's (default: %(default)s)",
    )
    ld.add_argument("--keep-going", action="store_true", help="run the steps after the knee")
    ld.add_argument(
        "--hold",
        type=int,
        default=None,
        metavar="N",
        help="exit 1 when the deployment breaks at N concurrent calls or fewer "
        "(2 when the rig was the bottleneck there)",
    )
    _add_session_options(ld)
    ld.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    ld.set_defaults(func=cmd_load)

    mg = sub.add_parser(
        "merge",
        help="several run directories (shards of one run) as one gate table",
        description="Merge the scores of run directories written by separate processes or "
        "machines (e.g. the pods of deploy/kubernetes/load-job.yaml) and print the gate "
        "table of all their calls, as one run over them would.",
    )
    mg.add_argument("runs", nargs="+", help="run directories (.harness/runs/<run-id>)")
    mg.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    mg.add_argument("--baseline", default=None, help="baseline file for baseline gates")
    mg.add_argument(
        "--out", default=None, help="also write the merged scores here, as a baseline file"
    )
    mg.set_defaults(func=cmd_merge)

    ev = sub.add_parser("evaluate", help="evaluators and gates over saved instances")
    ev.add_argument("path", help="a run directory, a call directory or an OTLP .jsonl export")
    ev.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    ev.add_argument("--baseline", default=None, help="baseline file for baseline gates")
    ev.set_defaults(func=cmd_evaluate)

    gates = sub.add_parser("gates", help="work with the gates file").add_subparsers(
        dest="gates_command", required=True
    )
    export = gates.add_parser("export", help="export the gates as Prometheus alerting rules")
    export.add_argument("--prometheus", action="store_true", required=True)
    export.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    export.add_argument("--window", default="5m", help="rate/quantile window (default 5m)")
    export.add_argument("--out", default=None, help="write here instead of stdout")
    export.add_argument(
        "--source",
        choices=("production", "synthetic"),
        default=None,
        help="only the series of these calls (harness monitor labels each call's source)",
    )
    export.add_argument(
        "--monitor-rules",
        action="store_true",
        help="add the monitor's own rules: stopped (heartbeat) and cannot reach the agent",
    )
    export.set_defaults(func=cmd_gates_export)

    audio = sub.add_parser("audio", help="caller audio").add_subparsers(
        dest="audio_command", required=True
    )
    render = audio.add_parser("render", help="write each turn's caller audio as it will be sent")
    render.add_argument("scenario", help="a scenario file")
    render.add_argument("--out", required=True, help="output directory")
    render.add_argument("--conditions", default=None, help="a preset to apply instead")
    render.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    render.set_defaults(func=cmd_audio_render)

    mon = sub.add_parser(
        "monitor", help="scheduled synthetic calls and production scoring"
    ).add_subparsers(dest="monitor_command", required=True)
    mrun = mon.add_parser("run", help="call the deployed agent on a schedule")
    mrun.add_argument("paths", nargs="+", help="scenario files or directories")
    mrun.add_argument("--every", default=None, help="interval, e.g. 5m")
    mrun.add_argument("--cron", default=None, help='cron expression (UTC), e.g. "*/5 * * * *"')
    mrun.add_argument("--once", action="store_true", help="one cycle, then exit (pytest codes)")
    mrun.add_argument("--livekit-url", default=None, help="the deployed LiveKit server")
    mrun.add_argument("--agent-name", default=None, help="dispatch this agent_name")
    mrun.add_argument("--calls", type=int, default=1, help="calls per scenario per cycle")
    mrun.add_argument("--concurrency", type=int, default=1, help="calls at once")
    mrun.add_argument("--no-production", action="store_true", help="score synthetic calls only")
    mrun.add_argument("--retries", type=int, default=2, help="retries of an unreachable call")
    mrun.add_argument("--backoff", default="2s", help="first retry after this, then doubling")
    mrun.add_argument("--agent-version", default=None, help="label synthetic calls' version")
    mrun.add_argument("--environment", default=None, help="label synthetic calls' environment")
    _add_monitor_options(mrun, listen_default="127.0.0.1:4318")
    mrun.set_defaults(func=cmd_monitor_run)
    ming = mon.add_parser("ingest", help="score production calls posted as OTLP/HTTP")
    _add_monitor_options(ming, listen_default="127.0.0.1:4318")
    ming.set_defaults(func=cmd_monitor_ingest)
    mcmp = mon.add_parser("compare", help="two agent versions' gate tables side by side")
    mcmp.add_argument("version_a")
    mcmp.add_argument("version_b")
    mcmp.add_argument("--window", default="24h")
    mcmp.add_argument("--source", choices=("production", "synthetic"), default="production")
    mcmp.add_argument("--gates", default=None)
    mcmp.add_argument("--state-dir", default=".harness/monitor")
    mcmp.set_defaults(func=cmd_monitor_compare)
    mst = mon.add_parser("status", help="what the monitor's store holds")
    mst.add_argument("--state-dir", default=".harness/monitor")
    mst.set_defaults(func=cmd_monitor_status)

    inc = sub.add_parser("incident", help="turn incidents into regression tests").add_subparsers(
        dest="incident_command", required=True
    )
    imp = inc.add_parser("import", help="a production trace (+ recording) -> a scenario fixture")
    imp.add_argument("trace", nargs="?", help="OTLP JSON-lines export of the call")
    imp.add_argument("--candidate", default=None, help="a production candidate's id")
    imp.add_argument("--state-dir", default=".harness/monitor", help="the monitor's store")
    imp.add_argument("--recording", default=None, help="the call's recording (WAV)")
    imp.add_argument("--caller-channel", type=int, default=None, help="caller channel (0=left)")
    imp.add_argument("--id", default=None, help="incident id, e.g. INC-123")
    imp.add_argument(
        "--conversation-id",
        default=None,
        help="the call to import, when the export holds several",
    )
    imp.add_argument(
        "--expected", default=None, help='end state as JSON, e.g. {"tool_called": "x"}'
    )
    imp.add_argument("--redact-name", action="append", default=[], help="a name to redact")
    imp.add_argument(
        "--keep-name",
        action="append",
        default=[],
        help="a name never redacted, e.g. the clinic's own 'Dr Chen' (repeatable)",
    )
    imp.add_argument("--no-redact", action="store_true", help="write personal data as is")
    imp.add_argument(
        "--replay-value",
        action="append",
        default=[],
        help="value replayed for a redacted kind, e.g. NAME='Anna Smith' (repeatable)",
    )
    _add_fixture_options(imp)
    imp.set_defaults(func=cmd_incident_import)
    fr = inc.add_parser("from-run", help="a failed synthetic call's artifacts -> a fixture")
    fr.add_argument("run_dir", help=".harness/runs/<run>/<scenario>/")
    fr.add_argument("--id", default=None, help="incident id")
    _add_fixture_options(fr)
    fr.set_defaults(func=cmd_incident_from_run)
    lst = inc.add_parser("list", help="production calls kept as incident candidates")
    lst.add_argument("--state-dir", default=".harness/monitor", help="the monitor's store")
    lst.set_defaults(func=cmd_incident_list)
    rep = inc.add_parser("replay", help="run an incident fixture against an agent")
    rep.add_argument("incident", help="incident id or fixture path")
    rep.add_argument("--out", default="scenarios/incidents", help="fixture directory")
    _add_call_options(rep)
    rep.set_defaults(func=cmd_incident_replay)

    base = sub.add_parser("baseline", help="save a run as the baseline").add_subparsers(
        dest="baseline_command", required=True
    )
    save = base.add_parser("save", help="store a run's sketches as a baseline")
    save.add_argument("run", help="the run directory (.harness/runs/<run-id>)")
    save.add_argument("--out", default=".harness/baseline.json", help="baseline file")
    save.set_defaults(func=cmd_baseline_save)

    rpt = sub.add_parser(
        "report",
        help="write a run's HTML report (or a Perfetto trace) from its directory or a trace file",
    )
    rpt.add_argument("path", help="a run directory, a call directory or an OTLP .jsonl export")
    rpt.add_argument(
        "--format",
        choices=("html", "perfetto"),
        default="html",
        help=f"html: {NAMES.report}; perfetto: Chrome trace-event JSON for Perfetto or "
        "chrome://tracing (default: %(default)s)",
    )
    rpt.add_argument("--out", default=None, help="file to write (default: beside the input)")
    rpt.add_argument("--gates", default=None, help="gates file (default: harness.yaml, ...)")
    rpt.add_argument("--baseline", default=None, help="baseline file for baseline gates")
    rpt.set_defaults(func=cmd_report)

    show = sub.add_parser("show", help="print a saved call's Instance as a tree across layers")
    show.add_argument("path", help="a call's artifacts directory or a trace .jsonl file")
    show.add_argument("--conversation", default=None, help="pick one in a multi-call file")
    show.add_argument("--all", action="store_true", help="also show livekit-agents internals")
    show.set_defaults(func=cmd_show)

    agent = sub.add_parser(
        "agent",
        help="run an agent with tracing set up from the OTEL_* variables, no code change",
        description="harness agent [--service-name NAME] -- CMD ARGS...: every Python process "
        "CMD starts (livekit-agents' job processes too) exports its spans over OTLP/HTTP to "
        "OTEL_EXPORTER_OTLP_ENDPOINT. Use it as the agent command: "
        "--agent-cmd 'harness agent -- python my_agent.py start'.",
    )
    agent.add_argument("--service-name", default=None, help="OTEL_SERVICE_NAME when unset")
    agent.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    agent.set_defaults(func=cmd_agent)
    return parser


def _add_fixture_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="overwrite an existing fixture")
    p.add_argument("--out", default="scenarios/incidents", help="fixture directory")
    p.add_argument("--audio-dir", default="audio_fixtures/incidents", help="turn audio")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InfrastructureError as exc:
        print(f"infrastructure error: {exc}", file=sys.stderr)
        return 2
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
