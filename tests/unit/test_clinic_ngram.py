"""The clinic's ARPA language-model builder and the committed model files."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.clinic import build_lm, corpus, ngram
from examples.clinic.ngram import BOS, EOS, NGramModel

WORDS = st.sampled_from(["a", "b", "c", "d", "e", "f"])
SENTENCES = st.lists(st.lists(WORDS, min_size=0, max_size=7), min_size=1, max_size=12)


def assert_normalised(model: NGramModel, contexts: list[tuple[str, ...]]) -> None:
    for context in contexts:
        total = sum(model.prob(w, context) for w in model.vocab)
        assert total == pytest.approx(1.0, abs=1e-9), f"context {context!r} sums to {total}"


def test_tiny_corpus_is_normalised_in_every_context():
    model = ngram.build([s.split() for s in ["a b c", "a b", "b c a", "c"]], order=3)
    assert model.vocab == (EOS, "a", "b", "c")
    assert_normalised(model, model.contexts())


def test_seen_continuations_beat_unseen_ones():
    model = ngram.build([["next", "tuesday", "please"]] * 5 + [["tuesday"]], order=3)
    assert model.prob("please", [BOS, "next", "tuesday"]) > model.prob(
        EOS, [BOS, "next", "tuesday"]
    )
    assert model.prob("tuesday", ["next"]) > model.prob("next", ["next"])


def test_unknown_word_has_no_probability_and_extra_vocab_has_some():
    model = ngram.build([["hello"]], order=2, extra_vocab=["goodbye"])
    assert model.prob("unheard", [BOS]) == 0.0
    assert 0.0 < model.prob("goodbye", [BOS]) < model.prob("hello", [BOS])
    assert_normalised(model, model.contexts())


def test_arpa_text_round_trips():
    model = ngram.build([s.split() for s in ["a b c", "b c", "c a b a"]], order=3)
    text = model.to_arpa()
    assert text.startswith("\\data\\\nngram 1=5\n")
    assert text.rstrip().endswith("\\end\\")
    back = NGramModel.from_arpa(text)
    assert back.order == 3 and back.vocab == model.vocab
    for context in model.contexts():
        for w in model.vocab:
            assert back.prob(w, context) == pytest.approx(model.prob(w, context), rel=1e-5)


@pytest.mark.parametrize(
    "bad",
    [[["a", "<s>"]], [["a", "</s>"]], [["a b"]], [[""]]],
    ids=["bos", "eos", "space", "empty"],
)
def test_invalid_tokens_are_rejected(bad):
    with pytest.raises(ValueError, match="invalid token"):
        ngram.build(bad)


def test_empty_corpus_is_rejected():
    with pytest.raises(ValueError, match="empty corpus"):
        ngram.build([], extra_vocab=[])
    with pytest.raises(ValueError, match="order"):
        ngram.build([["a"]], order=0)


@settings(max_examples=60, deadline=None)
@given(sentences=SENTENCES, order=st.integers(min_value=1, max_value=4))
def test_every_context_sums_to_one(sentences, order):
    model = ngram.build(sentences, order=order)
    unseen = [("f", "e"), ("zz",), (BOS, "f"), ("a", "a", "a")]
    assert_normalised(model, model.contexts() + unseen)
    for p in model.probs.values():
        assert 0.0 < p <= 1.0
    for bow in model.backoffs.values():
        assert 0.0 < bow <= 1.0


@settings(max_examples=30, deadline=None)
@given(sentences=SENTENCES)
def test_arpa_round_trip_keeps_the_distribution(sentences):
    model = ngram.build(sentences, order=3)
    back = NGramModel.from_arpa(model.to_arpa())
    totals = [sum(back.prob(w, c) for w in back.vocab) for c in model.contexts()]
    assert all(math.isclose(t, 1.0, abs_tol=1e-4) for t in totals)


def test_committed_model_files_are_current():
    """Regenerate in memory: a template change without `python -m examples.clinic.build_lm`
    would leave the recogniser on a stale model."""
    for path, text in build_lm.generate().items():
        assert path.read_text() == text, (
            f"{path.name} is stale; run python -m examples.clinic.build_lm"
        )


def test_clinic_model_covers_the_domain():
    model = NGramModel.from_arpa(build_lm.ARPA_PATH.read_text())
    assert model.order == 3
    vocab = set(model.vocab)
    for word in ["tuesday", "cleaning", "o'clock", "goodbye", "don't", "wait", "john", "miller"]:
        assert word in vocab
    dictionary = build_lm.DICT_PATH.read_text().splitlines()
    heads = {line.split()[0].split("(")[0] for line in dictionary}
    assert heads == vocab - {EOS}
    likely = model.sentence_logprob("next tuesday please".split())
    unlikely = model.sentence_logprob("please tuesday next".split())
    assert likely > unlikely + 5


def test_corpus_is_deterministic_and_covers_self_corrections():
    first, second = corpus.sentences(), corpus.sentences()
    assert first == second
    assert any("no wait" in s for s in first)
    assert any(s.startswith("i don't know") for s in first)
    assert corpus.sentences(seed=1) != first
