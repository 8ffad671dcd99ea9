"""A deterministic synthetic ``reviews`` table: short film reviews labelled by sentiment.

Each review mixes a few neutral words with words of its sentiment, so a text classifier
fine-tuned on a few dozen rows for a few seconds already separates them - the demo's
built-in step.
"""

from __future__ import annotations

import random

import pandas as pd

POSITIVE = ["great", "wonderful", "brilliant", "moving", "funny", "superb", "charming", "warm"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "bland", "tedious", "clumsy", "stale"]
NEUTRAL = ["the", "film", "story", "acting", "plot", "was", "really", "quite", "and", "ending"]


def generate(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """``n`` rows ``(review, sentiment)``, half 'positive' and half 'negative'."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentiment = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(NEUTRAL, 4) + rng.sample(
            POSITIVE if sentiment == "positive" else NEGATIVE, 2
        )
        rng.shuffle(words)
        rows.append((" ".join(words), sentiment))
    return pd.DataFrame(rows, columns=["review", "sentiment"])
