"""Host CPU pressure over a call, and the "host overloaded" note."""

from __future__ import annotations

from pathlib import Path

from harness.call.hostload import PressureMeter, overload_note, read_cpu_stall_us
from harness.session.summary import CallRow, call_table

PSI = "some avg10=1.00 avg60=2.00 avg300=3.00 total={}\nfull avg10=0 avg60=0 avg300=0 total=0\n"


def test_reads_the_some_total_of_psi(tmp_path: Path):
    f = tmp_path / "cpu"
    f.write_text(PSI.format(123456))
    assert read_cpu_stall_us(f) == 123456
    assert read_cpu_stall_us(tmp_path / "missing") is None
    f.write_text("garbage")
    assert read_cpu_stall_us(f) is None


def test_the_share_is_stall_time_over_wall_time(tmp_path: Path, monkeypatch):
    f = tmp_path / "cpu"
    f.write_text(PSI.format(1_000_000))
    clock = iter([100.0, 102.0])
    monkeypatch.setattr("harness.call.hostload.time.monotonic", lambda: next(clock))
    meter = PressureMeter(f).start()
    f.write_text(PSI.format(2_500_000))  # 1.5 s of stall in 2 s
    assert meter.share() == 0.75


def test_without_psi_nothing_is_claimed(tmp_path: Path):
    assert PressureMeter(tmp_path / "none").start().share() is None
    assert overload_note([None, None]) is None


def test_the_call_table_says_host_overloaded_only_when_it_was():
    def row(p):
        return CallRow("a", 1, 2, 1.0, 2.0, 3.0, "pass", "", "ok", "", p)

    assert "host overloaded" not in call_table([row(0.1), row(None)])
    table = call_table([row(0.1), row(0.83), row(0.6)])
    assert "host overloaded during 2 of 3 calls (CPU pressure up to 83 %" in table
