"""The ``harness`` command: wiring over the library, no logic of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import HarnessError, InfrastructureError, ScenarioError


def _progress(msg: str) -> None:
    print(f"[harness] {msg}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.engine import CallSession, Schedule, SessionConfig
    from harness.scenario import load_scenarios
    from harness.summary import call_table

    scenarios = load_scenarios(args.paths)
    if not scenarios:
        raise ScenarioError("no scenario files found", file=" ".join(args.paths))
    config = SessionConfig(
        livekit_url=args.livekit_url,
        agent_name=args.agent_name,
        agent_cmd=args.agent_cmd,
        calls=args.calls,
        concurrency=args.concurrency,
        artifacts=Path(args.artifacts),
    )
    calls = [(s, r) for s in scenarios for r in range(1, args.calls + 1)]
    _progress(f"{len(calls)} calls from {len(scenarios)} scenarios, run {config.run_id}")
    with CallSession(config, on_progress=_progress) as session:
        schedule = Schedule(session)
        schedule.ensure(calls)
        outcomes = [schedule.outcome(s, r) for s, r in calls]
    print(call_table(outcomes))
    print(f"artifacts: {config.run_dir}")
    if any(o.verdict == "error" for o in outcomes):
        return 2
    return 1 if any(o.verdict == "fail" for o in outcomes) else 0


def cmd_show(args: argparse.Namespace) -> int:
    from harness.show import render_tree
    from harness.trace.otlp import load_instance

    print(render_tree(load_instance(args.path, args.conversation)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Synthetic-call regression tests for LiveKit voice agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run scenarios as real calls and print a per-call table")
    run.add_argument("paths", nargs="+", help="scenario files or directories")
    run.add_argument("--livekit-url", default=None, help="default: LIVEKIT_URL, else local")
    run.add_argument("--agent-name", default=None, help="override each scenario's `agent`")
    run.add_argument("--agent-cmd", default=None, help="start this agent worker for the run")
    run.add_argument("--calls", type=int, default=1, help="repeat each scenario N times")
    run.add_argument("--concurrency", type=int, default=1, help="run up to K calls at once")
    run.add_argument("--artifacts", default=".harness/runs", help="artifacts directory")
    run.set_defaults(func=cmd_run)

    show = sub.add_parser("show", help="print a saved call's Instance as a tree across layers")
    show.add_argument("path", help="a call's artifacts directory or a trace .jsonl file")
    show.add_argument("--conversation", default=None, help="pick one in a multi-call file")
    show.set_defaults(func=cmd_show)
    return parser


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
