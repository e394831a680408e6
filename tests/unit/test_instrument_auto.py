"""The zero-code set-up: the launcher's environment, the standard variables, and real
processes exporting to a real OTLP/HTTP receiver (no mocks)."""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from harness_instrument import auto, launcher
from harness_instrument import conventions as c
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

BOOT = str(launcher.bootstrap_dir())
PY = sys.executable

# --- launch_env -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        (["python", "my_agent.py", "start"], "my_agent"),
        (["python", "-m", "pkg.agent", "start"], "pkg.agent"),
        ([PY, "-u", "-W", "ignore", "-X", "dev", "agents/my_agent.py", "dev"], "my_agent"),
        (["python3.11", "-um", "pkg.agent"], "pkg.agent"),
        (["python3", "-mpkg.worker", "start"], "pkg.worker"),
        (["python", "-Wignore", "--check-hash-based-pycs", "never", "app/__main__.py"], "app"),
        (["/usr/bin/python3", "--", "x.py"], "x"),
        (["./serve_agent.py", "start"], "serve_agent"),
        (["my-agent", "start"], "my-agent"),
        (["python", "-c", "print(1)"], None),
        (["python", "-"], None),
        (["python"], None),
    ],
)
def test_the_service_name_is_derived_from_the_command(cmd, expected):
    env = launcher.launch_env(cmd, {"PATH": "/bin"})
    assert env.get("OTEL_SERVICE_NAME") == expected
    assert env["PATH"] == "/bin"


def test_pythonpath_gets_the_bootstrap_dir_first_and_keeps_what_was_there():
    assert launcher.launch_env(["python", "a.py"], {})["PYTHONPATH"] == BOOT
    kept = os.pathsep.join(["/opt/lib", "", "/srv/x"])
    env = launcher.launch_env(["python", "a.py"], {"PYTHONPATH": kept})
    assert env["PYTHONPATH"] == BOOT + os.pathsep + kept
    # a nested launch does not stack the directory twice
    assert launcher.launch_env(["python", "a.py"], env)["PYTHONPATH"] == env["PYTHONPATH"]


def test_a_set_service_name_is_never_overwritten():
    environ = {"OTEL_SERVICE_NAME": "prod-agent"}
    assert launcher.launch_env(["python", "x.py"], environ, "flag")["OTEL_SERVICE_NAME"] == (
        "prod-agent"
    )
    assert launcher.launch_env(["python", "x.py"], {}, "flag")["OTEL_SERVICE_NAME"] == "flag"
    assert environ == {"OTEL_SERVICE_NAME": "prod-agent"}


_names = st.text(
    alphabet=st.characters(blacklist_characters="=\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=16,
)
_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_args = st.one_of(
    st.text(max_size=24),
    st.sampled_from(["python", "python3.11", PY, "-m", "-c", "-um", "-W", "-X", "--", "-"]),
    st.sampled_from(["x.py", "__main__.py", "/", "pkg/", "-mpkg.mod", "--check-hash-based-pycs"]),
)


@given(
    cmd=st.lists(_args, max_size=6),
    environ=st.dictionaries(
        st.one_of(_names, st.sampled_from(["PYTHONPATH", "OTEL_SERVICE_NAME", "PATH"])),
        _values,
        max_size=8,
    ),
    service_name=st.none() | st.text(max_size=12),
)
def test_launch_env_never_raises_and_passes_every_other_variable_on(cmd, environ, service_name):
    before = dict(environ)
    env = launcher.launch_env(cmd, environ, service_name)
    assert environ == before  # pure
    ours = {"PYTHONPATH", "OTEL_SERVICE_NAME"}
    assert {k: v for k, v in env.items() if k not in ours} == {
        k: v for k, v in environ.items() if k not in ours
    }
    assert env["PYTHONPATH"].split(os.pathsep)[0] == BOOT
    assert env["PYTHONPATH"].endswith(environ.get("PYTHONPATH", ""))
    if environ.get("OTEL_SERVICE_NAME"):
        assert env["OTEL_SERVICE_NAME"] == environ["OTEL_SERVICE_NAME"]
    elif service_name:
        assert env["OTEL_SERVICE_NAME"] == service_name


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command given"),
        (["--service-name"], "--service-name needs a NAME"),
        (["--service-name", "svc"], "no command given"),
        (["--bogus", "python"], "unknown option '--bogus'"),
        (["--", "no-such-executable-4a7c"], "cannot find an executable 'no-such-executable-4a7c'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert launcher.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "usage: harness-instrument" in err


def test_the_module_reports_a_missing_command_without_a_traceback(tmp_path):
    for argv in ([], ["no-such-executable-4a7c", "x"]):
        proc = subprocess.run(
            [PY, "-m", "harness_instrument.launcher", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# --- the standard variables -------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_SDK_DISABLED": "true"},
        {"OTEL_SDK_DISABLED": " TRUE "},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "none, none"},
    ],
)
def test_the_variables_can_turn_it_off(environ):
    assert auto.settings_from_env(environ) is None


def test_settings_come_from_the_standard_variables_only():
    got = auto.settings_from_env(
        {
            "OTEL_SERVICE_NAME": "booking-svc",
            "OTEL_RESOURCE_ATTRIBUTES": (
                "agent.layer=background, service.version=2.1.0,"
                "deployment.environment.name=eu%2Dprod,deployment.environment=old,broken"
            ),
            "OTEL_SDK_DISABLED": "false",
        }
    )
    assert got == {
        "service_name": "booking-svc",
        "layer": "background",
        "version": "2.1.0",
        "environment": "eu-prod",
    }
    older = auto.settings_from_env(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=a,agent.version=1.0,deployment.environment=ci"}
    )
    assert older == {
        "service_name": "a",
        "layer": "conversational",
        "version": "1.0",
        "environment": "ci",
    }


def test_an_invalid_layer_falls_back_to_conversational_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        got = auto.settings_from_env({"OTEL_RESOURCE_ATTRIBUTES": "agent.layer=frontend"})
    assert got is not None and got["layer"] == "conversational"
    assert "agent.layer='frontend' in OTEL_RESOURCE_ATTRIBUTES is not a layer" in caplog.text


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
    ],
)
def test_an_unsupported_protocol_is_named_in_one_warning(environ, caplog):
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        assert auto.settings_from_env(environ) is not None
    (record,) = caplog.records
    assert "exports only OTLP/HTTP protobuf" in record.getMessage()
    assert "spans go over http/protobuf" in record.getMessage()


def test_http_protobuf_is_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        auto.settings_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert caplog.records == []


def _run_code(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def test_importing_auto_configures_nothing_and_configure_is_idempotent(tmp_path):
    code = """
        import sys
        from opentelemetry import trace
        import harness_instrument.auto as auto
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        first = auto.configure_from_env()
        assert first is not None and auto.configure_from_env() is first
        assert trace.get_tracer_provider() is first
        assert "livekit.agents" not in sys.modules
        print(first.resource.attributes["service.name"])
    """
    proc = _run_code(code, _clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "unknown_service"  # python -c names nothing


def test_a_failing_set_up_logs_one_warning_and_returns_none(tmp_path):
    code = """
        import harness_instrument, harness_instrument.auto as auto
        def boom(*args, **kwargs):
            raise RuntimeError("no exporter today")
        harness_instrument.init_tracing = boom
        assert auto.configure_from_env() is None and auto.configure_from_env() is None
    """
    proc = _run_code(code, _clean_env(), tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "zero-code tracing set-up failed; the process runs untraced: "
        "RuntimeError: no exporter today"
    ]


# --- real processes, a real OTLP/HTTP receiver ------------------------------------------------


@dataclass
class Received:
    resource: dict[str, Any]
    name: str
    attributes: dict[str, Any]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Receiver:
    """A stdlib OTLP/HTTP traces receiver on 127.0.0.1: records and decodes every POST."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.posts = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != c.OTLP_TRACES_PATH:
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                receiver.record(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, request: ExportTraceServiceRequest) -> None:
        got = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {a.key: _value(a.value) for a in s.attributes}
                    got.append(Received(resource, s.name, attrs))
        with self.cond:
            self.posts += 1
            self.spans.extend(got)
            self.cond.notify_all()

    def wait_for(
        self, done: Callable[[dict[str, Received]], bool], timeout: float = 10.0
    ) -> dict[str, Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not done({s.name: s for s in self.spans}):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"spans received: {[s.name for s in self.spans]}")
                self.cond.wait(left)
            return {s.name: s for s in self.spans}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
        r.thread.join(5)


HELLO = """\
import json, sys
from opentelemetry import trace
with trace.get_tracer("x").start_as_current_span("hello"):
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("harness", "livekit"))))
"""

FORK = """\
import multiprocessing as mp
import sys
from opentelemetry import trace


def child():
    with trace.get_tracer("x").start_as_current_span("in-child"):
        pass


if __name__ == "__main__":
    with trace.get_tracer("x").start_as_current_span("in-parent"):
        proc = mp.get_context("forkserver").Process(target=child)
        proc.start()
        proc.join(30)
    sys.exit(proc.exitcode)
"""

ONE_LINE = "import harness_instrument.autoconfigure  # noqa: F401\n"


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=90, cwd=cwd, env=_clean_env(**env)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def launched(script: Path) -> list[str]:
    return [PY, "-m", "harness_instrument.launcher", "--", PY, script.name]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_script_without_tracing_code_exports_through_the_launcher(tmp_path, receiver):
    script = write(tmp_path, "hello_agent.py", HELLO)
    proc = run(
        launched(script),
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_RESOURCE_ATTRIBUTES="service.version=9.9.0,deployment.environment=staging",
    )
    assert proc.stdout.strip() == "[]"  # neither the harness nor livekit was imported
    assert proc.stderr == ""
    hello = receiver.wait_for(lambda s: "hello" in s)["hello"]
    assert hello.resource[c.SERVICE_NAME] == "hello_agent"
    for attrs in (hello.resource, hello.attributes):
        assert attrs[c.AGENT_LAYER] == "conversational"
        assert attrs[c.DEPLOYMENT_ENVIRONMENT_NAME] == "staging"
        assert attrs[c.SERVICE_VERSION] == attrs[c.AGENT_VERSION] == "9.9.0"


def test_a_forkserver_child_exports_at_exit_too(tmp_path, receiver):
    script = write(tmp_path, "fork_agent.py", FORK)
    run(
        launched(script),
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=ci",
        OTEL_BSP_SCHEDULE_DELAY="60000",  # only the exit flush of each process can send
    )
    spans = receiver.wait_for(lambda s: {"in-parent", "in-child"} <= set(s))
    for name in ("in-parent", "in-child"):
        assert spans[name].resource[c.SERVICE_NAME] == "fork_agent", name
        assert spans[name].attributes[c.AGENT_LAYER] == "conversational", name
        assert spans[name].attributes[c.DEPLOYMENT_ENVIRONMENT_NAME] == "ci", name


@pytest.mark.parametrize(
    "off", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}], ids=str
)
def test_nothing_is_exported_when_the_variables_say_so(tmp_path, receiver, off):
    script = write(tmp_path, "hello_agent.py", HELLO)
    run(launched(script), tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, **off)
    time.sleep(0.5)  # the process has exited: anything it sent has arrived
    assert receiver.posts == 0


def test_the_one_line_alternative(tmp_path, receiver):
    script = write(tmp_path, "one_line_agent.py", ONE_LINE + FORK)
    run(
        [PY, script.name],
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_RESOURCE_ATTRIBUTES="agent.layer=workflow",
    )
    spans = receiver.wait_for(lambda s: {"in-parent", "in-child"} <= set(s))
    for name in ("in-parent", "in-child"):
        assert spans[name].resource[c.SERVICE_NAME] == "one_line_agent", name
        assert spans[name].attributes[c.AGENT_LAYER] == "workflow", name
        assert spans[name].attributes[c.DEPLOYMENT_ENVIRONMENT_NAME] == "dev", name


def test_grpc_is_refused_in_one_warning_and_spans_still_go_over_http(tmp_path, receiver):
    script = write(tmp_path, "hello_agent.py", HELLO)
    proc = run(
        launched(script),
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    warning = proc.stderr.strip().splitlines()
    assert len(warning) == 1 and "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported" in warning[0]
    receiver.wait_for(lambda s: "hello" in s)


def test_another_sitecustomize_still_runs_after_ours(tmp_path, receiver):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITE_RAN'] = '1'\n")
    script = write(
        tmp_path,
        "chained.py",
        "import os, sys\n"
        "from opentelemetry import trace\n"
        "print(os.environ.get('OTHER_SITE_RAN'), sys.path.index(os.environ['BOOT']) < "
        "sys.path.index(os.environ['OTHER']), type(trace.get_tracer_provider()).__name__)\n",
    )
    proc = run(
        launched(script),
        tmp_path,
        PYTHONPATH=str(other),
        BOOT=BOOT,
        OTHER=str(other),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
    )
    assert proc.stdout.split() == ["1", "True", "TracerProvider"]


def test_an_interpreter_without_the_package_says_so_in_one_line_and_runs(tmp_path):
    base = getattr(sys, "_base_executable", "") or ""
    probe = subprocess.run(
        [base, "-c", "import harness_instrument"], capture_output=True, timeout=60
    )
    if not base or probe.returncode == 0:
        pytest.skip("no interpreter without harness_instrument at hand")
    env = launcher.launch_env([base, "-c", "print('ran')"], _clean_env())
    proc = subprocess.run(
        [base, "-c", "print('ran')"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0 and proc.stdout == "ran\n"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install livekit-call-harness-instrument" in lines[0]
    assert base in lines[0]


@pytest.mark.parametrize(
    ("cmd", "name"),
    [
        (["harness", "agent", "--", "python", "examples/minimal_agent/agent.py", "start"], "agent"),
        (["/venv/bin/python3", "-m", "harness", "agent", "--", "python", "-m", "pkg.a"], "pkg.a"),
        (["harness-instrument", "--service-name", "pizza", "--", "python", "a.py"], "pizza"),
        (["python", "-m", "harness_instrument.launcher", "--", "./my-agent"], "my-agent"),
        (["harness", "agent", "--help"], "harness"),
    ],
)
def test_the_launcher_names_the_command_it_runs_not_itself(cmd, name):
    assert launcher.service_name_for(cmd) == name
