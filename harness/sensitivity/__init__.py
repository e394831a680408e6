"""``harness sensitivity``: mutation testing for a voice suite.

A regression suite is worth what it catches. Given a suite (scenarios), a catalogue of
faults (:mod:`harness.sensitivity.catalogue`) and a number of calls, it runs the suite once
clean and once per fault, and says per fault whether it was caught, by which gate or
expectation, after how many calls, and the suite's score (caught / total) with the false
alarms of the clean run (:mod:`harness.sensitivity.runner`). The results go to the terminal,
to ``sensitivity.json`` in the run directory and to JUnit XML
(:mod:`harness.sensitivity.report`).

Typical use::

    from harness.sensitivity import load_catalogue, run_sensitivity, render_table

    catalogue = load_catalogue("examples/clinic/faults.yaml")
    with CallSession(config) as session:
        result = run_sensitivity(session, scenarios, catalogue, calls=2, gates=gates)
    print(render_table(result))
"""

from harness.sensitivity.catalogue import (
    CallerBehaviour,
    Catalogue,
    CatalogueError,
    Fault,
    load_catalogue,
    parse_catalogue,
)
from harness.sensitivity.report import (
    SENSITIVITY_FILE,
    render_table,
    to_dict,
    write_json,
    write_junit,
)
from harness.sensitivity.runner import (
    Alarm,
    CallRecord,
    RunResult,
    SensitivityResult,
    run_sensitivity,
    scenario_for,
)

__all__ = [
    "SENSITIVITY_FILE",
    "Alarm",
    "CallRecord",
    "CallerBehaviour",
    "Catalogue",
    "CatalogueError",
    "Fault",
    "RunResult",
    "SensitivityResult",
    "load_catalogue",
    "parse_catalogue",
    "render_table",
    "run_sensitivity",
    "scenario_for",
    "to_dict",
    "write_json",
    "write_junit",
]
