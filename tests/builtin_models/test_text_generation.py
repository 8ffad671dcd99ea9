"""text_generation: the perplexity metric, row checks, hyperparams, and a tiny GPT-2 (and a
tiny BERT warm-started as a decoder) fine-tuned through the task functions, then generating.

The tiny GPT-2 (2 layers, n_embd 32, a word-level vocabulary trained here with the
``tokenizers`` library, so one word is one token; no padding token, as GPT-2) learns the
toy sentences below ("the red cat sat on the mat") in about a second.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from builtin_models import text_generation as tg
from builtin_models import text_generation_model, text_metrics
from builtin_models.tasks import get_task
from builtin_models.text_generation_model import TextGenerationModel, TextGenerator
from byom.errors import InvalidInput, InvalidOption

ADJECTIVES = ["red", "big", "small", "green"]
ANIMALS = ["cat", "dog", "bird"]
PLACES = ["mat", "tree", "roof"]
VOCABULARY = ["the", "sat", "on", "under", "and", "slept", *ADJECTIVES, *ANIMALS, *PLACES]
TINY_GENERATION: dict[str, Any] = {
    "learning_rate": 1e-2,
    "num_train_epochs": 5,
    "per_device_train_batch_size": 10,
    "warmup_steps": 0,
    "max_length": 24,
    "max_new_tokens": 8,
}


def story_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Repetitive toy sentences: ``the <adjective> <animal> sat on the <place>``."""
    rng = random.Random(seed)
    rows = [
        f"the {rng.choice(ADJECTIVES)} {rng.choice(ANIMALS)} sat on the {rng.choice(PLACES)}"
        for _ in range(n)
    ]
    return pd.DataFrame({"text": rows})


def build_tiny_gpt2(folder: Path) -> Path:
    """Save a randomly initialised tiny GPT-2 and a word-level tokenizer to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words.decoder = decoders.WordPiece()  # joins the words with spaces
    words.train_from_iterator(
        [" ".join(VOCABULARY)],
        trainers.WordLevelTrainer(special_tokens=["<|endoftext|>", "<unk>"]),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        model_max_length=64,
    )
    config = GPT2Config(
        vocab_size=words.get_vocab_size(),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    folder.mkdir(parents=True, exist_ok=True)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def storyteller(
    tiny_gpt2: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None
) -> tuple[tg.Trained, tg.Examples]:
    """The tiny GPT-2 fine-tuned on 50 sentences: ``(Trained, 10 holdout examples)``."""
    params = tg.validate_hyperparams(TINY_GENERATION)
    examples = tg.prepare(story_frame(60), params)
    trained = tg.train(
        tg.subset(examples, range(50)),
        base_model=str(tiny_gpt2),
        hyperparams=params,
        workdir=tmp_path_factory.mktemp("generation_work"),
    )
    return trained, tg.subset(examples, range(50, 60))


def _tokens(trained: tg.Trained, text: str) -> int:
    return len(trained.tokenizer(text, add_special_tokens=False)["input_ids"])


# -- the metric


def test_perplexity_of_hand_checked_cases() -> None:
    ln2 = math.log(2)
    assert text_metrics.perplexity(0.0, 5) == 1.0  # every token certain
    # Tokens of probability 1/2, 1/4, 1/8: mean NLL 2 ln 2, perplexity 4.
    assert text_metrics.perplexity(ln2 + 2 * ln2 + 3 * ln2, 3) == pytest.approx(4.0)
    # Weighted by tokens: one text of 1 token at p=1/2 and one of 3 at p=1/8 is
    # 2 ** (10 / 4) = 5.657, not the mean of the two texts' perplexities (2 + 8) / 2 = 5.
    assert text_metrics.perplexity(ln2 + 9 * ln2, 4) == pytest.approx(2**2.5, abs=1e-4)
    assert text_metrics.perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError, match="at least one predicted token"):
        text_metrics.perplexity(1.0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        text_metrics.perplexity(-1.0, 2)


def test_token_nll_counts_every_predicted_token_once() -> None:
    """A model that spreads each next token evenly over 4 ids: ln 4 per predicted token,
    padding excluded (sequences of 3 and 5 tokens predict 2 + 4)."""
    import torch

    class Uniform:
        def eval(self) -> Uniform:
            return self

        def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
            return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 4))

    for batch_size in (1, 2):
        total, count = text_metrics.token_nll(
            Uniform(), [[1, 2, 3], [3, 2, 1, 0, 2]], 0, batch_size
        )
        assert count == 6 and total == pytest.approx(6 * math.log(4))
    assert text_metrics.perplexity(total, count) == pytest.approx(4.0)


# -- registry, rows, hyperparams


def test_the_registry_entry() -> None:
    task = get_task("text-generation")
    assert task.input_columns == ("text",) and task.target_column == "continuation"
    assert "perplexity" in task.metrics and task.answers_target
    assert not task.target_required and not task.target_in_rows


def test_rows_need_a_text_column() -> None:
    params = tg.validate_hyperparams(None)
    with pytest.raises(InvalidInput, match=r"needs a text column; the query returned body"):
        tg.prepare(pd.DataFrame({"body": ["a b"] * 12}), params)
    # prompt, or the PREDICT column the platform renamed to the target, are texts too.
    for name in ("prompt", "continuation", "TEXT"):
        frame = story_frame(12).rename(columns={"text": name})
        assert tg.prepare(frame, params).texts == story_frame(12)["text"].tolist()


def test_null_or_empty_texts_and_too_few_rows() -> None:
    params = tg.validate_hyperparams(None)
    frame = story_frame(20)
    frame.loc[3, "text"] = None
    frame.loc[7, "text"] = "  "
    with pytest.raises(InvalidInput) as err:
        tg.prepare(frame, params)
    assert "2 of 20 rows have a NULL or empty text (the first is row 4)" in err.value.message
    with pytest.raises(InvalidInput, match="at least 10 rows.*got 4"):
        tg.prepare(story_frame(4), params)


def test_hyperparam_defaults_and_checks() -> None:
    assert tg.validate_hyperparams(None) == tg.DEFAULT_HYPERPARAMS
    for bad in ({"num_beams": 0}, {"max_new_tokens": 1.5}, {"max_length": "64"}):
        with pytest.raises(InvalidOption, match=next(iter(bad))):
            tg.validate_hyperparams(bad)
    with pytest.raises(InvalidOption, match="Did you mean max_new_tokens"):
        tg.validate_hyperparams({"max_new_token": 2})


def test_base_models_that_cannot_generate(tmp_path: Path, tiny_gpt2: Path) -> None:
    from transformers import T5Config

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(InvalidOption, match="Cannot load the base model"):
        tg.load_base(str(tmp_path / "empty"))
    t5 = tmp_path / "t5"
    T5Config(vocab_size=20, d_model=8, num_layers=1, num_heads=1).save_pretrained(str(t5))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (t5 / name).write_bytes((tiny_gpt2 / name).read_bytes())
    with pytest.raises(InvalidOption, match="encoder-decoder"):
        tg.load_base(str(t5))


# -- training, metrics, generation


def test_a_tiny_gpt2_trains_evaluates_and_generates(storyteller: Any) -> None:
    trained, holdout = storyteller
    assert trained.train_loss is not None
    # GPT-2 has no padding token: it pads with its end of text (0 here), which ends texts.
    assert trained.meta["end_token_id"] == trained.meta["pad_token_id"] == 0
    assert trained.tokenizer.pad_token == "<|endoftext|>"
    metrics = tg.evaluate(trained, holdout)
    assert metrics["test_rows"] == 10
    # <|endoftext|>, 7 words, <|endoftext|>: the 7 words and the end predicted.
    assert metrics["test_tokens"] == 10 * 8
    # Untrained: about the vocabulary size (17); a second of training: nearly certain.
    assert 1 <= metrics["perplexity"] < 3 < metrics["base_perplexity"], metrics
    assert len(metrics["samples"]) == 3
    sample = metrics["samples"][0]
    assert set(sample) == {"prompt", "reference", "prediction"}
    assert sample["prediction"].split()[:2] == sample["reference"].split()[:2], sample
    answer = trained.generator().predict(["the red cat", None, "", "the big"])
    assert answer[0] == "sat on the mat" or answer[0].startswith("sat on the"), answer
    assert answer[1] is None and isinstance(answer[2], str)
    assert not answer[3].startswith("the big")  # the continuation only
    assert tg.evaluate(trained, tg.subset(holdout, [])) == {}
    assert tg.labels(trained) == []


def test_max_new_tokens_bounds_the_output(storyteller: Any) -> None:
    trained = storyteller[0]
    generator = trained.generator()
    prompts = ["the", "the small dog sat", "the red"]
    for limit in (1, 2, 3):
        for text in generator.predict(prompts, {"max_new_tokens": limit}):
            assert _tokens(trained, text) <= limit
    sampled = {"max_new_tokens": 2, "temperature": 5.0, "seed": 1}
    assert all(_tokens(trained, t) <= 2 for t in generator.predict(prompts, sampled))
    beams = generator.predict(prompts, {"num_beams": 3, "max_new_tokens": 2})
    assert all(isinstance(t, str) and _tokens(trained, t) <= 2 for t in beams)


def test_a_batch_answers_as_each_row_alone(storyteller: Any) -> None:
    """Left padding: a short prompt among long ones is continued as on its own."""
    generator = storyteller[0].generator()
    prompts = ["the green bird sat on", "the", "the small dog"]
    assert generator.predict(prompts) == [generator.predict([p])[0] for p in prompts]


def test_seeded_sampling_is_reproducible(storyteller: Any) -> None:
    generator = storyteller[0].generator()
    prompts = ["the red", "the small dog", "the"]
    params = {"temperature": 5.0, "seed": 7, "max_new_tokens": 6}
    first = generator.predict(prompts, params)
    assert generator.predict(prompts, params) == first
    # A row's sample does not depend on the rows generated with it.
    assert generator.predict(prompts[1:2], params) == first[1:2]
    others = [generator.predict(prompts, {**params, "seed": s}) for s in (8, 9)]
    assert any(other != first for other in others)
    # The declared defaults (what MLflow fills in) are the model's own settings.
    assert generator.predict(prompts, text_generation_model.PARAMS_EXAMPLE) == (
        generator.predict(prompts)
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"max_new_tokens": -1}, "max_new_tokens must be in"),
        ({"num_beams": 2.5}, "num_beams must be a whole number"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": 0}, "top_p must be above 0"),
        ({"seed": True}, "seed must be a whole number"),
        ({"max_tokens": 3}, "unknown generation parameter(s) max_tokens"),
    ],
)
def test_bad_generation_params(storyteller: Any, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        storyteller[0].generator().predict(["the red"], params)
    assert fragment in str(err.value)


def test_saved_model_serves_the_same_text(storyteller: Any, tmp_path: Path) -> None:
    trained, holdout = storyteller
    tg.save(trained, tmp_path / "model")
    prompts = ["the red cat", "the"]
    pyfunc = TextGenerationModel()
    pyfunc.load_context(SimpleNamespace(artifacts={"model": str(tmp_path / "model")}))
    params = {"max_new_tokens": 3}
    expected = trained.generator().predict(prompts, params)
    for column in ("prompt", "text"):
        answer = pyfunc.predict(None, pd.DataFrame({column: [*prompts, None]}), params)
        assert list(answer.columns) == ["prediction"]
        assert answer["prediction"].tolist() == [*expected, None]
    # The logged example's shape: a row's NULL text takes its prompt.
    both = pd.DataFrame({"text": [prompts[0], None], "prompt": [None, prompts[1]]})
    assert pyfunc.predict(None, both, params)["prediction"].tolist() == expected
    with pytest.raises(ValueError, match="expected a 'text' \\(or 'prompt'\\) column"):
        pyfunc.predict(None, pd.DataFrame({"a": ["x"], "b": ["y"]}))
    reloaded = tg.load(SimpleNamespace(unwrap_python_model=lambda: pyfunc))
    assert reloaded.meta == trained.meta
    scored = tg.evaluate(reloaded, tg.prepare_for(reloaded, holdout_frame(holdout)))
    assert scored["perplexity"] == tg.evaluate(trained, holdout)["perplexity"]
    assert "base_perplexity" not in scored  # EVALUATE of a stored version: no base model
    assert TextGenerator.load(tmp_path / "model").predict(prompts) == (
        trained.generator().predict(prompts)
    )
    assert tg.perplexity_of(str(tmp_path / "model"), holdout.texts, 24) == scored["perplexity"]


def holdout_frame(examples: tg.Examples) -> pd.DataFrame:
    return pd.DataFrame({"text": examples.texts})


def test_base_perplexity_is_the_untrained_model(storyteller: Any, tiny_gpt2: Path) -> None:
    trained, holdout = storyteller
    metrics = tg.evaluate(trained, holdout)
    assert tg.perplexity_of(str(tiny_gpt2), holdout.texts, 24) == metrics["base_perplexity"]


def test_an_encoder_warm_starts_a_decoder(
    tiny_bert: Path, tmp_path: Path, one_thread: None
) -> None:
    """The default path, on the tiny BERT: a BertLMHeadModel, [CLS] starts, [SEP] ends."""
    from transformers import AutoModelForCausalLM

    params = tg.validate_hyperparams({**TINY_GENERATION, "num_train_epochs": 1})
    frame = pd.DataFrame({"text": [f"the movie was {w} and fresh" for w in ["great"] * 12]})
    trained = tg.train(
        tg.prepare(frame, params),
        base_model=str(tiny_bert),
        hyperparams=params,
        workdir=tmp_path / "w",
    )
    tokenizer = trained.tokenizer
    assert type(trained.model).__name__ == "BertLMHeadModel" and trained.model.config.is_decoder
    assert trained.meta["start_token_id"] == tokenizer.cls_token_id
    assert trained.meta["end_token_id"] == tokenizer.sep_token_id
    assert trained.meta["pad_token_id"] == tokenizer.pad_token_id
    # [CLS] text [SEP]: the prompt keeps [CLS] and drops [SEP] (the text goes on).
    assert trained.generator().encode("the movie", 24)[0] == tokenizer.cls_token_id
    assert tokenizer.sep_token_id not in trained.generator().encode("the movie", 24)
    (answer,) = trained.generator().predict(["the movie was"], {"max_new_tokens": 4})
    assert isinstance(answer, str) and not answer.startswith("the movie")
    metrics = tg.evaluate(trained, tg.prepare_for(trained, frame.head(2)))
    assert math.isfinite(metrics["perplexity"]) and metrics["base_perplexity"] > 0
    tg.save(trained, tmp_path / "model")
    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "model"))
    assert type(reloaded).__name__ == "BertLMHeadModel"


def test_perplexity_of_the_packaged_minilm_warm_start(one_thread: None) -> None:
    """The benchmarks' "before" figure: the default base model, as a decoder (its LM head's
    transform is new: random, so the seed fixes it)."""
    texts = ["the cat sat on the mat", "a dog ran under the tree"]
    first = tg.perplexity_of(None, texts, 32, seed=3)
    assert math.isfinite(first) and first > 1
    assert tg.perplexity_of(None, texts, 32, seed=3) == first


def test_a_run_logs_a_model_that_takes_prompts_and_params(
    tiny_gpt2: Path, tmp_path: Path, one_thread: None
) -> None:
    """run_training end to end: metrics logged, and the MLflow model's signature takes
    ``text`` or ``prompt`` and passes the generation params through to the pyfunc."""
    from builtin_models import artifacts
    from builtin_models.training import TrainingRequest, run_training
    from tests.builtin_models.conftest import FrameReader

    tracking = artifacts.default_tracking_uri(tmp_path)
    request = TrainingRequest(
        task="text_generation",
        model_name=str(tiny_gpt2),
        hyperparams={**TINY_GENERATION, "num_train_epochs": 2},
        test_size=0.2,
        tracking_uri=tracking,
        rename={"body": "continuation"},  # PREDICT body: the text to learn
    )
    result = run_training(FrameReader(story_frame(20).rename(columns={"text": "body"})), request)
    assert result.test_rows == 4 and result.labels == []
    assert {"perplexity", "base_perplexity", "test_tokens", "samples", "train_loss"} <= set(
        result.metrics
    )
    model = artifacts.load_model(result.model_uri, tracking)
    rows = pd.DataFrame({"id": [1, 2], "prompt": ["the red cat", "the"]})
    for limit in (1, 2):
        answer = model.predict(rows, params={"max_new_tokens": limit})
        assert all(len(text.split()) <= limit for text in answer["prediction"])
    sampled = {"temperature": 2, "seed": 3, "max_new_tokens": 3}  # an int for a float: fine
    first = model.predict(rows, params=sampled)["prediction"].tolist()
    assert model.predict(rows, params=sampled)["prediction"].tolist() == first
    texts = model.predict(pd.DataFrame({"text": ["the red cat"]}))["prediction"].tolist()
    assert texts == model.predict(rows.head(1))["prediction"].tolist()
