"""Holdout metrics of generated text: ROUGE (summarization), BLEU and chrF (translation).

* :func:`rouge`: ROUGE-1, ROUGE-2 and ROUGE-L F1 (Lin 2004) from Google's ``rouge-score``
  package, the implementation of the summarization literature, with its Porter stemmer;
  the mean over rows, in [0, 1]. Its tokenizer keeps ASCII letters and digits only
  (English text).
* :func:`bleu_chrf`: corpus BLEU (Papineni et al. 2002) and chrF (Popovic 2015) from
  ``sacrebleu`` with its default settings (BLEU: 13a tokenization, 4-grams; chrF: character
  6-grams, beta 2), the reproducible figures that papers quote; in [0, 100].

One reference per row. Imported only by the task modules: the gateway never loads these
packages.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bleu_chrf", "rouge"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_DIGITS = 6


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} references: one each"
        )


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 of each prediction against its reference ({} for no rows)."""
    _check(predictions, references)
    if not predictions:
        return {}
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        # score(target, prediction): the reference comes first.
        scores = scorer.score(str(reference), str(prediction))
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: round(total / len(predictions), _DIGITS) for key, total in totals.items()}


def bleu_chrf(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF of the predictions against their references ({} for no rows)."""
    _check(predictions, references)
    if not predictions:
        return {}
    import sacrebleu

    hypotheses = [str(p) for p in predictions]
    refs = [[str(r) for r in references]]  # one reference stream
    return {
        "bleu": round(float(sacrebleu.corpus_bleu(hypotheses, refs).score), _DIGITS - 2),
        "chrf": round(float(sacrebleu.corpus_chrf(hypotheses, refs).score), _DIGITS - 2),
    }
