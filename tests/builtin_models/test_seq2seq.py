"""summarization and translation: metrics, options, row checks, hyperparams, and a tiny T5
(and a tiny BERT2BERT) fine-tuned through the task functions, then generating.

The tiny T5 (2+2 layers, d_model 64, a word-level vocabulary trained here with the
``tokenizers`` library, so one word is one token) learns a word-for-word "translation" and a
"summary" (the nouns) of synthetic rows in a few seconds.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from builtin_models import seq2seq_model, text_metrics
from builtin_models import summarization as su
from builtin_models import translation as tr
from builtin_models.seq2seq_model import Seq2SeqGenerator, Seq2SeqModel
from builtin_models.tasks import get_task
from builtin_models.translation_options import check
from byom.errors import InvalidInput, InvalidOption

EN_FR = {
    "red": "rouge",
    "blue": "bleu",
    "cat": "chat",
    "dog": "chien",
    "big": "grand",
    "small": "petit",
    "house": "maison",
    "car": "voiture",
    "green": "vert",
    "tree": "arbre",
}
NOUNS = ["cat", "dog", "house", "car", "tree"]
ADJECTIVES = ["red", "blue", "green", "big", "small"]
LANGS = {"source_lang": "en", "target_lang": "fr"}
TINY_SEQ2SEQ: dict[str, Any] = {
    "learning_rate": 3e-3,
    "num_train_epochs": 30,
    "per_device_train_batch_size": 10,
    "warmup_steps": 0,
    "max_length": 16,
    "max_target_length": 16,
}


def translation_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """3-5 English words -> the same words in "French", word for word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.choices(list(EN_FR), k=rng.randint(3, 5))
        rows.append((" ".join(words), " ".join(EN_FR[w] for w in words)))
    return pd.DataFrame(rows, columns=["source", "target"])


def summary_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """3-5 adjectives with two nouns among them -> the nouns, in order (what the text is
    about)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.choices(ADJECTIVES, k=rng.randint(3, 5))
        for noun in rng.sample(NOUNS, 2):
            words.insert(rng.randint(0, len(words)), noun)
        rows.append((" ".join(words), " ".join(w for w in words if w in NOUNS)))
    return pd.DataFrame(rows, columns=["source", "summary"])


def build_tiny_t5(folder: Path) -> Path:
    """Save a randomly initialised tiny T5 and a word-level tokenizer to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    corpus = [" ".join(EN_FR), " ".join(EN_FR.values()), "summarize: translate English to French:"]
    words.train_from_iterator(
        corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"])
    )
    words.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=64,
    )
    config = T5Config(
        vocab_size=words.get_vocab_size(),
        d_model=64,
        d_ff=128,
        d_kv=32,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="relu",
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    T5ForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="module")
def translator(
    tiny_t5: Path, tmp_path_factory: pytest.TempPathFactory, one_thread: None
) -> tuple[tr.Trained, tr.Examples]:
    """A tiny T5 fine-tuned on 50 pairs: ``(Trained, 10 holdout examples)``."""
    params = tr.validate_hyperparams(TINY_SEQ2SEQ)
    examples = tr.prepare(translation_frame(60), params, task_options=LANGS)
    trained = tr.train(
        tr.subset(examples, range(50)),
        base_model=str(tiny_t5),
        hyperparams=params,
        workdir=tmp_path_factory.mktemp("translation_work"),
    )
    return trained, tr.subset(examples, range(50, 60))


# -- metrics


def test_identical_texts_score_the_maximum() -> None:
    texts = ["the cat sat on the mat", "a dog barks"]
    assert text_metrics.bleu_chrf(texts, texts) == {"bleu": 100.0, "chrf": 100.0}
    assert text_metrics.rouge(texts, texts) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_rouge_of_a_hand_checked_case() -> None:
    # 3 of the reference's 6 unigrams (P 1, R 1/2), 2 of its 5 bigrams (P 1, R 2/5), LCS 3.
    scores = text_metrics.rouge(["the cat sat"], ["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["rouge2"] == pytest.approx(2 * 0.4 / 1.4, abs=1e-6)
    assert scores["rougeL"] == pytest.approx(2 / 3, abs=1e-6)
    assert text_metrics.rouge(["dogs"], ["a dog"])["rouge1"] == pytest.approx(2 / 3, abs=1e-6)


def test_bleu_of_a_hand_checked_case() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty.
    scores = text_metrics.bleu_chrf(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert scores["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=0.01)
    assert 0 < scores["chrf"] < 100
    assert text_metrics.bleu_chrf(["xyz"], ["the cat"])["bleu"] == 0.0


def test_metrics_of_no_rows_and_of_mismatched_rows() -> None:
    assert text_metrics.rouge([], []) == {} and text_metrics.bleu_chrf([], []) == {}
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        text_metrics.bleu_chrf(["a", "b"], ["a"])


# -- translation options


def test_translation_options_are_normalised() -> None:
    assert check({"source_lang": " EN ", "target_lang": "pt_br"}) == {
        "source_lang": "en",
        "target_lang": "pt-BR",
    }
    assert check({"source_lang": "zh-hans", "target_lang": "deu"})["source_lang"] == "zh-Hans"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({}, "translation needs source_lang: USING source_lang = 'en', target_lang = 'fr'"),
        ({"source_lang": "en"}, "translation needs target_lang"),
        ({"source_lang": "en", "target_lang": ""}, "translation needs target_lang"),
        ({"source_lang": "English", "target_lang": "fr"}, "Did you mean 'en'?"),
        ({"source_lang": "en", "target_lang": "f"}, "target_lang must be a language code"),
        ({"source_lang": 12, "target_lang": "fr"}, "source_lang must be a language code"),
        ({"source_lang": "en", "target_lang": "EN"}, "both 'en'"),
        ({**LANGS, "target_language": "fr"}, "Unknown translation option 'target_language'"),
    ],
)
def test_bad_translation_options(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidOption) as err:
        check(options)
    assert fragment in err.value.message


def test_the_registry_checks_translation_options() -> None:
    task = get_task("translation")
    assert task.columns == ("source", "target") and task.options == tuple(LANGS)
    with pytest.raises(InvalidOption, match="source_lang"):
        task.check_options({})
    assert task.check_options({"source_lang": "EN", "target_lang": "Fr"}) == LANGS
    assert get_task("summarization").columns == ("source", "summary")


def test_translation_rows_need_the_languages() -> None:
    params = tr.validate_hyperparams(None)
    with pytest.raises(InvalidOption, match="source_lang"):
        tr.prepare(translation_frame(20), params)
    assert tr.prepare(translation_frame(20), params, task_options=LANGS).options == LANGS


# -- rows and hyperparams


def test_missing_columns_name_the_convention() -> None:
    frame = pd.DataFrame({"article": ["a b"] * 12, "summary": ["a"] * 12})
    with pytest.raises(InvalidInput, match=r"needs the columns source and summary.*article"):
        su.prepare(frame, su.validate_hyperparams(None))


def test_null_or_empty_texts_and_too_few_rows() -> None:
    params = su.validate_hyperparams(None)
    frame = summary_frame(20)
    frame.loc[3, "summary"] = None
    frame.loc[7, "summary"] = "  "
    with pytest.raises(InvalidInput) as err:
        su.prepare(frame, params)
    assert "2 of 20 rows have a NULL or empty summary (the first is row 4)" in err.value.message
    with pytest.raises(InvalidInput, match="at least 10 rows.*got 4"):
        su.prepare(summary_frame(4), params)
    upper = summary_frame(12).rename(columns={"source": "SOURCE"})
    assert len(su.prepare(upper, params).sources) == 12


def test_hyperparam_defaults_and_checks() -> None:
    assert su.validate_hyperparams(None) == su.DEFAULT_HYPERPARAMS
    assert tr.validate_hyperparams(None)["max_target_length"] == 128
    for bad in ({"num_beams": 0}, {"max_new_tokens": 1.5}, {"max_target_length": "64"}):
        with pytest.raises(InvalidOption, match=next(iter(bad))):
            su.validate_hyperparams(bad)
    with pytest.raises(InvalidOption, match="source_prefix must be a string"):
        su.validate_hyperparams({"source_prefix": 3})
    with pytest.raises(InvalidOption, match="Did you mean num_beams"):
        su.validate_hyperparams({"num_beam": 2})


def test_a_base_model_that_is_not_a_model(tmp_path: Path) -> None:
    params = su.validate_hyperparams(None)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InvalidOption, match="Cannot load the base model"):
        su.train(
            su.prepare(summary_frame(12), params),
            base_model=str(tmp_path),
            hyperparams=params,
            workdir=tmp_path / "w",
        )


# -- training, metrics, generation


def test_translation_trains_evaluates_and_generates(translator: Any) -> None:
    trained, holdout = translator
    assert trained.meta["prefix"] == "translate English to French: "  # a T5 base model
    assert trained.meta["source_lang"] == "en" and trained.meta["max_new_tokens"] == 16
    assert trained.train_loss is not None
    metrics = tr.evaluate(trained, holdout)
    assert metrics["test_rows"] == 10
    assert 0 <= metrics["bleu"] <= 100
    # Untrained it writes random words (chrF about 20); 5 s of training learn most words.
    assert metrics["chrf"] >= 30, metrics
    assert len(metrics["samples"]) == 5 and set(metrics["samples"][0]) == {
        "source",
        "reference",
        "prediction",
    }
    answer = trained.generator().predict(["red cat", None, "big green tree"])
    assert isinstance(answer[0], str) and isinstance(answer[2], str) and answer[1] is None
    assert tr.evaluate(trained, tr.subset(holdout, [])) == {}


def test_max_new_tokens_bounds_the_output(translator: Any) -> None:
    generator = translator[0].generator()
    texts = ["red cat big dog", "small house green car tree"]
    for limit in (1, 2, 3):
        for text in generator.predict(texts, {"max_new_tokens": limit}):
            assert len(text.split()) <= limit  # one word is one token here
    beams = generator.predict(texts, {"num_beams": 3, "max_new_tokens": 2})
    assert all(isinstance(t, str) and len(t.split()) <= 2 for t in beams)


def test_seeded_sampling_is_reproducible(translator: Any) -> None:
    generator = translator[0].generator()
    texts = ["red cat big dog", "small house green car", "tree"]
    params = {"temperature": 5.0, "seed": 7, "max_new_tokens": 6}
    first = generator.predict(texts, params)
    assert generator.predict(texts, params) == first
    # A row's sample does not depend on the rows generated with it.
    assert generator.predict(texts[1:2], params) == first[1:2]
    # The declared defaults (what MLflow fills in) are the model's own settings.
    assert generator.predict(texts, seq2seq_model.PARAMS_EXAMPLE) == generator.predict(texts)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"max_new_tokens": -1}, "max_new_tokens must be in"),
        ({"num_beams": 2.5}, "num_beams must be a whole number"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": 0}, "top_p must be above 0"),
        ({"max_tokens": 3}, "unknown generation parameter(s) max_tokens"),
    ],
)
def test_bad_generation_params(translator: Any, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        translator[0].generator().predict(["red cat"], params)
    assert fragment in str(err.value)


def test_saved_model_serves_the_same_text(translator: Any, tmp_path: Path) -> None:
    trained = translator[0]
    tr.save(trained, tmp_path / "model")
    texts = ["red cat big dog", "green tree"]
    pyfunc = Seq2SeqModel()
    pyfunc.load_context(SimpleNamespace(artifacts={"model": str(tmp_path / "model")}))
    frame = pd.DataFrame({"source": [*texts, None]})
    answer = pyfunc.predict(None, frame, {"max_new_tokens": 3})
    assert list(answer.columns) == ["prediction"]
    assert answer["prediction"].tolist() == [
        *trained.generator().predict(texts, {"max_new_tokens": 3}),
        None,
    ]
    reloaded = tr.load(SimpleNamespace(unwrap_python_model=lambda: pyfunc))
    assert reloaded.meta == trained.meta
    assert tr.prepare_for(reloaded, translation_frame(3)).options == LANGS
    assert Seq2SeqGenerator.load(tmp_path / "model").predict(texts) == (
        trained.generator().predict(texts)
    )


def test_summarization_trains_and_scores_rouge(
    tiny_t5: Path, tmp_path: Path, one_thread: None
) -> None:
    steps: list[tuple[int, int, float, float | None]] = []
    params = su.validate_hyperparams({**TINY_SEQ2SEQ, "num_train_epochs": 20})
    examples = su.prepare(summary_frame(50), params)
    trained = su.train(
        su.subset(examples, range(40)),
        base_model=str(tiny_t5),
        hyperparams=params,
        workdir=tmp_path,
        on_step=lambda *a, loss=None: steps.append((*a, loss)),
    )
    assert steps[-1][0] == steps[-1][1] == 80
    assert trained.meta["prefix"] == "summarize: "
    metrics = su.evaluate(trained, su.subset(examples, range(40, 50)))
    assert set(metrics) == {"rouge1", "rouge2", "rougeL", "test_rows", "samples"}
    assert all(0 <= metrics[k] <= 1 for k in ("rouge1", "rouge2", "rougeL"))
    # Untrained it writes random words; 3 s of training pick the nouns (ROUGE-1 0.95 here).
    assert metrics["rouge1"] >= 0.6, metrics
    assert su.labels(trained) == []


def test_an_encoder_warm_starts_an_encoder_decoder(
    tiny_bert: Path, tmp_path: Path, one_thread: None
) -> None:
    """The BERT2BERT default path, on the tiny BERT: no T5 prefix, [CLS] starts decoding."""
    from transformers import AutoModelForSeq2SeqLM

    params = su.validate_hyperparams({**TINY_SEQ2SEQ, "num_train_epochs": 1})
    frame = summary_frame(12).assign(source=lambda f: "the movie " + f["source"])
    trained = su.train(
        su.prepare(frame, params),
        base_model=str(tiny_bert),
        hyperparams=params,
        workdir=tmp_path / "w",
    )
    assert trained.meta["prefix"] == ""
    config = trained.model.config
    assert config.decoder_start_token_id == trained.tokenizer.cls_token_id
    assert config.eos_token_id == trained.tokenizer.sep_token_id
    answer = trained.generator().predict(["the movie red cat"], {"max_new_tokens": 4})
    assert isinstance(answer[0], str)
    su.save(trained, tmp_path / "model")
    assert type(AutoModelForSeq2SeqLM.from_pretrained(str(tmp_path / "model"))).__name__ == (
        "EncoderDecoderModel"
    )


def test_a_translation_run_logs_a_model_that_takes_generation_params(
    tiny_t5: Path, tmp_path: Path, one_thread: None
) -> None:
    """run_training end to end: options checked, metrics logged, and the MLflow model's
    signature passes the generation params through to the pyfunc."""
    from builtin_models import artifacts
    from builtin_models.training import TrainingRequest, run_training
    from tests.builtin_models.conftest import FrameReader

    tracking = artifacts.default_tracking_uri(tmp_path)
    request = TrainingRequest(
        task="translation",
        model_name=str(tiny_t5),
        hyperparams={**TINY_SEQ2SEQ, "num_train_epochs": 2},
        test_size=0.2,
        tracking_uri=tracking,
        rename={"fr": "target"},
        task_options={"source_lang": "EN", "target_lang": "fr"},
    )
    frame = translation_frame(20).rename(columns={"target": "fr"})
    result = run_training(FrameReader(frame), request)
    assert result.test_rows == 4 and result.labels == []
    assert {"bleu", "chrf", "test_rows", "samples", "train_loss"} <= set(result.metrics)
    model = artifacts.load_model(result.model_uri, tracking)
    rows = pd.DataFrame({"source": ["red cat big dog", "green tree"]})
    for limit in (1, 2):
        answer = model.predict(rows, params={"max_new_tokens": limit})
        assert all(len(text.split()) <= limit for text in answer["prediction"])
    sampled = {"temperature": 2, "seed": 3, "max_new_tokens": 3}  # an int for a float: fine
    first = model.predict(rows, params=sampled)["prediction"].tolist()
    assert model.predict(rows, params=sampled)["prediction"].tolist() == first
    with pytest.raises(InvalidOption, match="target_lang"):
        run_training(FrameReader(frame), TrainingRequest(task="translation", task_options={}))


def test_create_model_checks_the_translation_options() -> None:
    from gateway.builtin_planner import checked_options

    task = get_task("translation")
    options, active = checked_options({"source_lang": "EN", "target_lang": "fr"}, "m", task)
    assert options == LANGS and active is True
    with pytest.raises(InvalidOption, match="translation needs source_lang"):
        checked_options({"hyperparams": "{}"}, "m", task)
    with pytest.raises(InvalidOption, match="unknown option 'source_lang'"):
        checked_options({"source_lang": "en"}, "m", get_task("summarization"))
