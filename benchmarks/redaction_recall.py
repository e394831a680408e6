"""Recall of the incident import's PII redaction by kind, and its false-positive rate.

Every entry of ``tests/fixtures/pii/pii_corpus.yaml`` is placed in a production call (a
user turn, an agent turn, a tool call's arguments or result, or a session status message;
see ``tests/fixtures/pii/build.py``) that the real :func:`harness.incident.import_incident`
imports into a temporary directory, with a recording. A token is found when it is in no
file written and in no file name (case-insensitive, and with digits normalised: separators
dropped, spoken digits as digits). Recall is tokens found over tokens, by kind.

The clean corpus (``clean_corpus.yaml``: ordinary clinic utterances) is imported the same
way; the false-positive rate is the share of its utterances an import altered (anything
redacted in the call). For comparison, the last line gives the share of clean utterances
that ``python-dateutil``'s fuzzy parser alone reads as a date: the reason the import only
hands it date-shaped candidates and decides birth dates by rule.

    python benchmarks/redaction_recall.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.incident import check_fixture  # noqa: E402
from tests.fixtures.pii.build import CLEAN_CORPUS, PII_CORPUS, import_entry, load  # noqa: E402


def recall_table(tmp: Path) -> tuple[list[str], int]:
    entries = load(PII_CORPUS)
    count: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    found: Counter[str] = Counter()
    missed: list[str] = []
    for e in entries:
        _, leaked = import_entry(e, tmp / f"pii-{e.n}")
        count[e.kind] += 1
        tokens[e.kind] += len(e.pii)
        gone = [t for t in e.pii if not any(line.startswith(repr(t)) for line in leaked)]
        found[e.kind] += len(gone)
        missed += [f"  missed: {e.label}: {line}" for line in leaked]
    rows = [f"{'kind':<16}{'entries':>8}{'tokens':>8}{'found':>8}{'recall':>9}"]
    for kind in count:
        rows.append(
            f"{kind:<16}{count[kind]:>8}{tokens[kind]:>8}{found[kind]:>8}"
            f"{100 * found[kind] / tokens[kind]:>8.1f}%"
        )
    total_t, total_f = sum(tokens.values()), sum(found.values())
    rows.append(
        f"{'all':<16}{len(entries):>8}{total_t:>8}{total_f:>8}{100 * total_f / total_t:>8.1f}%"
    )
    return rows + missed, total_t - total_f


def false_positives(tmp: Path) -> tuple[list[str], int, int]:
    entries = load(CLEAN_CORPUS)
    altered = []
    for e in entries:
        result, _ = import_entry(e, tmp / f"clean-{e.n}")
        says = [t.say for t in check_fixture(result.text).turns]
        if result.redactions or (e.where == "user" and e.text not in says):
            altered.append(f"  altered: {e.text!r} ({dict(result.redactions)})")
    return altered, len(altered), len(entries)


def dateutil_alone() -> tuple[int, int]:
    """Clean utterances python-dateutil's fuzzy parser reads as a date (no year needed)."""
    from dateutil import parser

    entries = load(CLEAN_CORPUS)
    hits = 0
    for e in entries:
        try:
            a = parser.parse(e.text, fuzzy=True, default=datetime(2000, 1, 1))
            b = parser.parse(e.text, fuzzy=True, default=datetime(2004, 2, 2))
        except (ValueError, OverflowError):
            continue
        if a.month == b.month or a.day == b.day:
            hits += 1  # it found a month or a day in the text
    return hits, len(entries)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        rows, missed = recall_table(Path(d))
        altered, n_altered, n_clean = false_positives(Path(d))
    print("\n".join(rows))
    print()
    print(
        f"clean utterances: {n_clean}, altered: {n_altered}, "
        f"false-positive rate {100 * n_altered / n_clean:.1f}%"
    )
    print("\n".join(altered))
    hits, n = dateutil_alone()
    print(
        f"python-dateutil fuzzy parse alone reads a date in {hits} of {n} clean utterances "
        f"({100 * hits / n:.1f}%)"
    )
    return 1 if missed or n_altered else 0


if __name__ == "__main__":
    sys.exit(main())
