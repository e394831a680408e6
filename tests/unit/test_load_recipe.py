"""deploy/kubernetes/load-job.yaml: the sharded load test's recipe says what the harness
understands, its shard count agrees with itself, and its merge step waits for every shard
and hands `harness merge` each run directory."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import yaml

from harness.cli import build_parser

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "load-job.yaml"


def docs() -> dict[str, dict]:
    return {
        d["metadata"]["name"] + "/" + d["kind"]: d for d in yaml.safe_load_all(RECIPE.read_text())
    }


def script(job: dict) -> str:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    return container["args"][0]


def test_every_pod_runs_a_load_test_the_cli_accepts_into_a_run_directory_of_its_own():
    job = docs()["harness-load/Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"]  # all shards at once: steps line up
    words = shlex.split(script(job))
    assert words[:3] == ["exec", "harness", "load"]
    args = build_parser().parse_args(words[2:])
    assert args.func.__name__ == "cmd_load"
    assert args.artifacts == "/runs/shard-$JOB_COMPLETION_INDEX"
    assert args.collector == "0.0.0.0:4318"
    service = docs()["harness-load/Service"]
    assert service["spec"]["clusterIP"] == "None"
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]


def run_merge_script(tmp_path: Path, shards: int, rounds: int = 1) -> subprocess.CompletedProcess:
    text = script(docs()["harness-load-merge/Job"])
    n = docs()["harness-load/Job"]["spec"]["completions"]
    assert f"-ge {n} ]" in text  # waits for as many shards as the Job runs
    for i in range(shards):
        run = tmp_path / f"shard-{i}" / f"2026-run-{i}"
        run.mkdir(parents=True)
        (run / "load.json").write_text("{}")
    text = (
        text.replace("/runs", str(tmp_path))
        .replace("exec harness merge", "exec echo merge")
        .replace("seq 720", f"seq {rounds}")
        .replace("sleep 10", "sleep 0")
    )
    return subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=30)


def test_merge_waits_for_every_shard_then_merges_their_run_directories(tmp_path: Path):
    done = run_merge_script(tmp_path, 4)
    assert done.returncode == 0, done.stderr
    merged = done.stdout.split()
    assert merged[0] == "merge"
    assert sorted(merged[1:]) == [str(tmp_path / f"shard-{i}" / f"2026-run-{i}") for i in range(4)]
    args = build_parser().parse_args(["merge", *merged[1:]])
    assert args.func.__name__ == "cmd_merge"


def test_merge_gives_up_with_a_message_when_a_shard_never_writes(tmp_path: Path):
    done = run_merge_script(tmp_path, 3, rounds=2)
    assert done.returncode == 1
    assert "fewer than 4 shards wrote load.json" in done.stderr
