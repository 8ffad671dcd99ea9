"""Holdout metrics of generated text: ROUGE (summarization), BLEU and chrF (translation),
perplexity (text generation).

* :func:`rouge`: ROUGE-1, ROUGE-2 and ROUGE-L F1 (Lin 2004) from Google's ``rouge-score``
  package, the implementation of the summarization literature, with its Porter stemmer;
  the mean over rows, in [0, 1]. Its tokenizer keeps ASCII letters and digits only
  (English text).
* :func:`bleu_chrf`: corpus BLEU (Papineni et al. 2002) and chrF (Popovic 2015) from
  ``sacrebleu`` with its default settings (BLEU: 13a tokenization, 4-grams; chrF: character
  6-grams, beta 2), the reproducible figures that papers quote; in [0, 100].
* :func:`perplexity`: ``exp(total NLL / tokens)`` of a language model over a holdout, from
  the summed negative log-likelihood (natural log) of every predicted token
  (:func:`token_nll`): each token weighs the same, whatever the length of its text or batch
  (not a mean of per-batch perplexities).

One reference per row. Imported only by the task modules: the gateway never loads these
packages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["bleu_chrf", "perplexity", "rouge", "token_nll"]

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


def perplexity(total_nll: float, n_tokens: int) -> float:
    """``exp(total_nll / n_tokens)``: the perplexity of ``n_tokens`` predicted tokens whose
    negative log-likelihoods (natural log) sum to ``total_nll``; ``inf`` past float range."""
    if n_tokens <= 0:
        raise ValueError(f"perplexity needs at least one predicted token, got {n_tokens}")
    if total_nll < 0 or math.isnan(total_nll):
        raise ValueError(f"a negative log-likelihood is >= 0, got {total_nll}")
    mean = total_nll / n_tokens
    return round(math.exp(mean), _DIGITS - 2) if mean < 709 else math.inf


def token_nll(
    model: Any, sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32
) -> tuple[float, int]:
    """``(summed negative log-likelihood, predicted tokens)`` of a causal language model
    (``model(input_ids=..., attention_mask=...).logits``) over token id sequences: every
    token after a sequence's first is predicted from those before it. Sequences of similar
    lengths are batched together (right-padded; padding is never a prediction)."""
    import torch

    total, count, size = 0.0, 0, max(1, batch_size)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), size):
            rows = [list(sequences[i]) for i in order[start : start + size]]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                targets.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            total += float(nll)
            count += int((targets != -100).sum())
    return total, count
