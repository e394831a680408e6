# The two commands a new user runs: `make demo` and `make test`. Both install what they
# need first (`make tools`: Debian packages, the venv, the LiveKit server), idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
AGENT_CMD ?= {python} -m examples.clinic.deploy start
PYTEST_ARGS ?=
# Calls run inside a private network namespace whose only addresses are loopback ones, so
# no packet can leave the machine (root only; otherwise they run as they are, with a notice).
LOOPBACK := scripts/netns.sh run
DEMO_ARGS ?= --calls 3 --concurrency 2

.PHONY: tools demo test test-unit test-e2e test-gates-xdist test-monitor-crash sensitivity load lint format bench clean

tools:
	@bash scripts/bootstrap.sh

# Three calls of each smoke scenario, two at a time: enough samples for real gate verdicts
# on a 2-core machine in under five minutes.
demo: tools
	$(LOOPBACK) $(VENV)/bin/harness run scenarios/smoke --agent-cmd "$(AGENT_CMD)" $(DEMO_ARGS)

# Unit tests two at a time (no server, no real-time audio), then every real call serially,
# with the slowest e2e tests timed (the CI budget is 60 minutes).
test: tools
	$(LOOPBACK) $(VENV)/bin/pytest tests/unit -n 2 $(PYTEST_ARGS)
	$(LOOPBACK) $(VENV)/bin/pytest tests/e2e scenarios/smoke -m "not xdist_gate and not soak" --durations=12 $(PYTEST_ARGS)

test-unit: tools
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test-e2e: tools
	$(LOOPBACK) $(VENV)/bin/pytest tests/e2e scenarios/smoke -m "not xdist_gate and not soak" --durations=12 $(PYTEST_ARGS)

# The two 16-call gate sessions again with pytest-xdist -n 2 (about 13 minutes).
test-gates-xdist: tools
	$(LOOPBACK) $(VENV)/bin/pytest tests/e2e/test_gates_session.py -m xdist_gate $(PYTEST_ARGS)

# kill -9 of the monitor at 20 random moments, with restarts (about 10 minutes).
test-monitor-crash: tools
	$(LOOPBACK) $(VENV)/bin/pytest tests/e2e/test_monitor_crash.py -m soak -s $(PYTEST_ARGS)

# Mutation testing of the project's own suite: the smoke scenarios (booking among them) and
# the clinic's hesitant caller, once clean and once per fault of the clinic's catalogue
# (every layer of the failure-mode library), each fault run stopped at its first alarm. Not
# in `make test`: about 30 minutes on a 2-core machine. Three rounds at most per run: the
# LLM first-token gate (p99) needs 50 samples, which two rounds of the suite do not give.
# Results: the table, .harness/runs/<run>/sensitivity.json, .harness/sensitivity.xml (JUnit).
SENSITIVITY_ARGS ?= --calls 3 --concurrency 2
sensitivity: tools
	$(LOOPBACK) $(VENV)/bin/harness sensitivity scenarios/smoke examples/clinic/scenarios \
		--catalogue examples/clinic/faults.yaml --agent-cmd "$(AGENT_CMD)" \
		--junitxml .harness/sensitivity.xml $(SENSITIVITY_ARGS)

# Capacity of the clinic deployment on this machine: the smoke suite's booking and greeting
# calls at 1, 2, 4, 8 and 16 at once, two minutes a level, up to the knee (the first level
# where a gate fails or p90 latency doubles), with what the harness itself cost per step.
# Not in `make test` (tests/e2e/test_load.py runs a short ramp there): about 15 minutes.
# Results: the table, .harness/runs/<run>/load.json and the run's report.html.
LOAD_ARGS ?= --ramp 1,2,4,8,16 --step-duration 2m
load: tools
	$(LOOPBACK) $(VENV)/bin/harness load scenarios/smoke/booking.yaml scenarios/smoke/greeting.yaml \
		--agent-cmd "$(AGENT_CMD)" $(LOAD_ARGS)

lint: tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: tools
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: tools
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .harness .pytest_cache .hypothesis
