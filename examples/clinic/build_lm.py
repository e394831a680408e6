"""Generate the recogniser's domain language model and pronunciation dictionary.

    python -m examples.clinic.build_lm          # rewrite examples/clinic/lm/*
    python -m examples.clinic.build_lm --check  # exit 1 if the committed files are stale

Writes three small files, all deterministic:

- ``corpus.txt``: the caller utterances from :mod:`examples.clinic.corpus`;
- ``clinic.arpa``: a trigram Witten-Bell model over that corpus (:mod:`examples.clinic.ngram`);
- ``clinic.dict``: every corpus word with all its pronunciations from pocketsphinx's
  bundled CMU dictionary, and nothing else, so the decoder cannot wander off-domain.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import corpus, ngram

LM_DIR = Path(__file__).resolve().parent / "lm"
CORPUS_PATH = LM_DIR / "corpus.txt"
ARPA_PATH = LM_DIR / "clinic.arpa"
DICT_PATH = LM_DIR / "clinic.dict"
ORDER = 3


def cmudict_path() -> Path:
    import pocketsphinx

    return Path(pocketsphinx.get_model_path("en-us")) / "cmudict-en-us.dict"


def pronunciations(words: list[str], dictionary: Path | None = None) -> str:
    """Dictionary text for ``words``: ``word PH ON ES`` lines, alternates as ``word(2)``."""
    wanted = set(words)
    entries: dict[str, list[str]] = {w: [] for w in words}
    with open(dictionary or cmudict_path(), encoding="utf-8") as f:
        for line in f:
            head, _, phones = line.strip().partition(" ")
            base = head.split("(", 1)[0]
            if base in wanted:
                entries[base].append(" ".join(phones.split()))
    missing = sorted(w for w, prons in entries.items() if not prons)
    if missing:
        raise ValueError(f"no pronunciation in the CMU dictionary for: {', '.join(missing)}")
    lines = []
    for word in sorted(entries):
        for i, phones in enumerate(entries[word]):
            name = word if i == 0 else f"{word}({i + 1})"
            lines.append(f"{name} {phones}")
    return "\n".join(lines) + "\n"


def generate() -> dict[Path, str]:
    """The three files' contents, keyed by path."""
    sentences = corpus.sentences()
    model = ngram.build((s.split() for s in sentences), order=ORDER)
    return {
        CORPUS_PATH: "\n".join(sentences) + "\n",
        ARPA_PATH: model.to_arpa(),
        DICT_PATH: pronunciations(corpus.vocabulary(sentences)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the committed files are current"
    )
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
        for p in stale:
            print(f"stale: {p}; run `python -m examples.clinic.build_lm`", file=sys.stderr)
        return 1 if stale else 0
    LM_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
