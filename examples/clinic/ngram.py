"""A small pure-Python n-gram language model builder that writes ARPA files.

Smoothing is interpolated Witten-Bell, stored in backoff form so that any ARPA reader
(pocketsphinx, SRILM, KenLM) computes the same probabilities:

    p_k(w | h) = (c(h, w) + T(h) * p_{k-1}(w | h')) / (c(h) + T(h))

where ``c(h)`` is how often context ``h`` was followed by any word, ``T(h)`` how many
distinct words followed it, and ``h'`` is ``h`` without its oldest word. Seen n-grams are
stored with ``p_k``; an unseen word backs off with weight ``T(h) / (c(h) + T(h))``, which is
exactly the leftover mass, so every context's distribution sums to one. The unigram level
interpolates with the uniform distribution over the vocabulary, so a vocabulary word that
never occurs in the corpus still gets a small probability.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BOS = "<s>"
EOS = "</s>"
_LOG10_ZERO = -99.0


@dataclass(frozen=True)
class NGramModel:
    """A backoff n-gram model. Probabilities are plain floats (not logs)."""

    order: int
    vocab: tuple[str, ...]
    """Every word the model predicts, ``</s>`` included and ``<s>`` excluded."""
    probs: dict[tuple[str, ...], float]
    """Stored n-grams (context + word) and their probabilities."""
    backoffs: dict[tuple[str, ...], float]
    """Backoff weights of contexts; a context that is absent has weight 1."""

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """P(word | context) with ARPA backoff semantics over the stored tables."""
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        weight = 1.0
        while True:
            p = self.probs.get((*ctx, word))
            if p is not None:
                return weight * p
            if not ctx:
                return 0.0
            weight *= self.backoffs.get(ctx, 1.0)
            ctx = ctx[1:]

    def contexts(self) -> list[tuple[str, ...]]:
        """Every context the model distinguishes: the empty one and each stored prefix."""
        out: set[tuple[str, ...]] = {()}
        if self.order > 1:
            out.add((BOS,))
        for ngram in self.probs:
            if len(ngram) < self.order and ngram[-1] != EOS:
                out.add(ngram)
        return sorted(out, key=lambda c: (len(c), c))

    def sentence_logprob(self, words: Sequence[str]) -> float:
        """Natural-log probability of a whole sentence, ``</s>`` included."""
        history = [BOS]
        total = 0.0
        for w in [*words, EOS]:
            total += math.log(self.prob(w, history))
            history.append(w)
        return total

    def to_arpa(self) -> str:
        """The model as ARPA text, deterministic byte for byte."""
        by_order: list[list[tuple[str, ...]]] = [[] for _ in range(self.order)]
        for ngram in self.probs:
            by_order[len(ngram) - 1].append(ngram)
        by_order[0].append((BOS,))
        lines = ["\\data\\"]
        lines += [f"ngram {k + 1}={len(grams)}" for k, grams in enumerate(by_order)]
        for k, grams in enumerate(by_order):
            lines += ["", f"\\{k + 1}-grams:"]
            for ngram in sorted(grams):
                p = self.probs.get(ngram)
                logp = _LOG10_ZERO if ngram == (BOS,) or not p else math.log10(p)
                line = f"{logp:.6f}\t{' '.join(ngram)}"
                if k + 1 < self.order and ngram in self.backoffs:
                    line += f"\t{math.log10(self.backoffs[ngram]):.6f}"
                lines.append(line)
        lines += ["", "\\end\\", ""]
        return "\n".join(lines)

    @classmethod
    def from_arpa(cls, text: str) -> NGramModel:
        """Parse ARPA text (as written by :meth:`to_arpa`, or any standard writer)."""
        probs: dict[tuple[str, ...], float] = {}
        backoffs: dict[tuple[str, ...], float] = {}
        order = 0
        section = 0
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line == "\\data\\" or line.startswith("ngram "):
                continue
            if line == "\\end\\":
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                order = max(order, section)
                continue
            fields = line.split()
            logp = float(fields[0])
            ngram = tuple(fields[1 : 1 + section])
            if len(ngram) != section:
                raise ValueError(f"malformed {section}-gram line: {raw!r}")
            if logp > _LOG10_ZERO:
                probs[ngram] = 10.0**logp
            if len(fields) > 1 + section:
                backoffs[ngram] = 10.0 ** float(fields[1 + section])
        vocab = tuple(sorted(g[0] for g in probs if len(g) == 1))
        return cls(order=order, vocab=vocab, probs=probs, backoffs=backoffs)


def build(
    sentences: Iterable[Sequence[str]],
    *,
    order: int = 3,
    extra_vocab: Iterable[str] = (),
) -> NGramModel:
    """Estimate an interpolated Witten-Bell model from tokenised sentences."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got order={order!r}")
    counts: list[dict[tuple[str, ...], dict[str, int]]] = [
        defaultdict(lambda: defaultdict(int)) for _ in range(order)
    ]
    for sentence in sentences:
        words = list(sentence)
        for w in words:
            if w in (BOS, EOS) or not w or any(ch.isspace() for ch in w):
                raise ValueError(f"invalid token {w!r} in sentence {words!r}")
        padded = [BOS, *words, EOS]
        for i in range(1, len(padded)):
            for k in range(order):
                if i - k < 0:
                    break
                counts[k][tuple(padded[i - k : i])][padded[i]] += 1

    vocab = sorted(set(counts[0][()]) | set(extra_vocab) - {BOS})
    if not vocab:
        raise ValueError("cannot build a language model from an empty corpus")

    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}

    # order 1: Witten-Bell against the uniform distribution
    unigram = counts[0][()]
    n = sum(unigram.values())
    t = len(unigram)
    for w in vocab:
        probs[(w,)] = (unigram.get(w, 0) + t / len(vocab)) / (n + t)

    def lower(word: str, context: tuple[str, ...]) -> float:
        # the interpolated lower-order estimate equals the ARPA value of the stored tables
        weight = 1.0
        while True:
            p = probs.get((*context, word))
            if p is not None:
                return weight * p
            weight *= backoffs.get(context, 1.0)
            context = context[1:]

    for k in range(1, order):
        level: dict[tuple[str, ...], float] = {}
        for context, followers in counts[k].items():
            c = sum(followers.values())
            t = len(followers)
            for w, cw in followers.items():
                level[(*context, w)] = (cw + t * lower(w, context[1:])) / (c + t)
            backoffs[context] = t / (c + t)
        probs.update(level)

    # a backoff weight is only meaningful on a stored n-gram shorter than the order
    backoffs = {ctx: bw for ctx, bw in backoffs.items() if ctx in probs or ctx == (BOS,)}
    return NGramModel(order=order, vocab=tuple(vocab), probs=probs, backoffs=backoffs)
