"""``harness-instrument [--service-name NAME] [--] CMD ARGS...``: run a command traced, with
no code change.

It puts :func:`bootstrap_dir` (a ``sitecustomize`` module) first on ``PYTHONPATH``, sets
``OTEL_SERVICE_NAME`` when it is unset (``--service-name``, else a name derived from the
command: ``python my_agent.py start`` gives ``my_agent``, ``python -m pkg.agent start``
gives ``pkg.agent``) and replaces itself with the command. Every Python process of the
command's tree (livekit-agents' forkserver and job processes included) inherits both, runs
``sitecustomize`` at start-up and calls :func:`harness_instrument.auto.configure_from_env`.
Interpreters started with ``-S``, ``-I`` or ``-E`` skip ``sitecustomize`` or ignore
``PYTHONPATH``; use ``import harness_instrument.autoconfigure`` in those.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["bootstrap_dir", "launch_env", "main", "service_name_for"]

PROG = "harness-instrument"
USAGE = f"usage: {PROG} [--service-name NAME] [--] CMD ARGS..."
HELP = f"""{USAGE}

Run CMD with OpenTelemetry tracing set up in every Python process it starts, from the
standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_RESOURCE_ATTRIBUTES with
agent.layer, service.version and deployment.environment.name, OTEL_SDK_DISABLED, ...).

  --service-name NAME  OTEL_SERVICE_NAME when it is unset (default: derived from CMD)
"""

_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?[a-z]?(\.exe)?$", re.IGNORECASE)
# interpreter options that take a value (the value may be glued on: -Wignore, -mpkg)
_VALUE_OPTIONS = "cmWX"
_LONG_VALUE_OPTIONS = ("--check-hash-based-pycs",)


class _UsageError(Exception):
    pass


def bootstrap_dir() -> Path:
    """The directory holding the ``sitecustomize`` that sets tracing up (not a package)."""
    return Path(__file__).resolve().parent / "_bootstrap"


def _stem(path: str) -> str | None:
    p = Path(path.rstrip("/\\") or path)
    if p.name == "__main__.py":
        p = p.parent
    name = p.stem if p.suffix.lower() in (".py", ".pyw", ".pyz", ".exe") else p.name
    return name or None


def service_name_for_python_args(args: Sequence[str]) -> str | None:
    """The service name of ``python ARGS``: the script's stem, the ``-m`` module, else None
    (``-c``, standard input, or no program)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return _stem(args[i + 1]) if i + 1 < len(args) else None
        if arg in _LONG_VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith("--"):
            i += 1
            continue
        if arg == "-":
            return None
        if not arg.startswith("-"):
            return _stem(arg)
        step = 1
        for j, flag in enumerate(arg[1:], start=1):
            if flag not in _VALUE_OPTIONS:
                continue
            glued = arg[j + 1 :]
            value = glued or (args[i + 1] if i + 1 < len(args) else "")
            if flag == "m":
                return value or None
            if flag == "c":
                return None
            step = 1 if glued else 2
            break
        i += step
    return None


def service_name_for(cmd: Sequence[str]) -> str | None:
    """The service name derived from a command line, None when there is nothing to go by.

    ``python my_agent.py start`` -> ``my_agent``; ``python -m pkg.agent`` -> ``pkg.agent``;
    any other executable -> its name (``./agent.py`` -> ``agent``, ``my-agent`` -> itself).
    """
    if not cmd or not cmd[0]:
        return None
    launched = _launched(cmd)
    if launched is not None:
        name, inner = launched
        return name or service_name_for(inner)
    exe = Path(cmd[0]).name
    if _PYTHON.match(exe):
        return service_name_for_python_args(cmd[1:])
    return _stem(cmd[0])


def _launched(cmd: Sequence[str]) -> tuple[str | None, list[str]] | None:
    """(--service-name, command) of this launcher, when ``cmd`` is the launcher itself
    (``harness-instrument [...] -- CMD``, ``harness agent -- CMD``, ``python -m harness
    agent -- CMD``, ``python -m harness_instrument.launcher -- CMD``); else None."""
    exe = Path(cmd[0]).name
    rest: Sequence[str] | None = None
    if exe == PROG:
        rest = cmd[1:]
    elif exe == "harness" and len(cmd) > 1 and cmd[1] == "agent":
        rest = cmd[2:]
    elif _PYTHON.match(exe) and list(cmd[1:3]) == ["-m", "harness_instrument.launcher"]:
        rest = cmd[3:]
    elif _PYTHON.match(exe) and list(cmd[1:4]) == ["-m", "harness", "agent"]:
        rest = cmd[4:]
    if rest is None:
        return None
    try:
        parsed = _parse(rest)
    except _UsageError:
        return None
    return parsed


def launch_env(
    cmd: Sequence[str], environ: Mapping[str, str], service_name: str | None = None
) -> dict[str, str]:
    """The environment to run ``cmd`` in: ``environ`` with :func:`bootstrap_dir` first on
    ``PYTHONPATH`` (what was there is kept after it) and ``OTEL_SERVICE_NAME`` set when it is
    unset or empty (``service_name``, else derived from ``cmd``; left unset when neither
    gives a name). Every other variable is passed on unchanged. Pure: ``environ`` is not
    modified."""
    env = dict(environ)
    boot = str(bootstrap_dir())
    existing = env.get("PYTHONPATH")
    if existing is None or existing == "":
        env["PYTHONPATH"] = boot
    elif existing.split(os.pathsep)[0] != boot:
        env["PYTHONPATH"] = boot + os.pathsep + existing
    if not env.get("OTEL_SERVICE_NAME"):
        name = service_name or service_name_for(cmd)
        if name:
            env["OTEL_SERVICE_NAME"] = name
    return env


def _parse(argv: Sequence[str]) -> tuple[str | None, list[str]] | None:
    """(service name, command); None for --help."""
    service_name: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            return None
        if arg == "--service-name":
            if i + 1 >= len(argv) or not argv[i + 1]:
                raise _UsageError("--service-name needs a NAME")
            service_name = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--service-name="):
            service_name = arg.split("=", 1)[1]
            if not service_name:
                raise _UsageError("--service-name needs a NAME")
            i += 1
            continue
        if arg.startswith("-"):
            raise _UsageError(f"unknown option {arg!r} (put the command after --)")
        break
    cmd = list(argv[i:])
    if not cmd:
        raise _UsageError("no command given")
    return service_name, cmd


def _fail(message: str) -> int:
    print(f"{PROG}: {message}; {USAGE}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command traced; returns only on a usage error (2): otherwise the process
    becomes the command."""
    try:
        parsed = _parse(list(sys.argv[1:] if argv is None else argv))
    except _UsageError as e:
        return _fail(str(e))
    if parsed is None:
        print(HELP, end="")
        return 0
    service_name, cmd = parsed
    env = launch_env(cmd, os.environ, service_name)
    if shutil.which(cmd[0], path=env.get("PATH", os.defpath)) is None:
        return _fail(f"cannot find an executable {cmd[0]!r} (not on PATH, or not executable)")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(cmd[0], cmd, env)
    except OSError as e:
        return _fail(f"cannot run {cmd[0]!r}: {e.strerror or e}")
    return 0  # not reached: execvpe replaced this process


if __name__ == "__main__":
    sys.exit(main())
