"""question_answering: row checks (an answer not in its context), hyperparams, windows over
long contexts, training a tiny BERT span head, predictions, and one logged run."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from builtin_models import question_answering as qa
from builtin_models.question_answerer_model import OUTPUTS, QuestionAnswerer, encode_windows
from byom.errors import InvalidInput, InvalidOption
from tests.builtin_models.conftest import GENRES, NEGATIVE, POSITIVE

#: The tiny BERT's window is 64 tokens; these train it in about two seconds.
TINY_QA_HYPERPARAMS: dict[str, Any] = {
    "learning_rate": 5e-3,
    "num_train_epochs": 8,
    "per_device_train_batch_size": 16,
    "warmup_steps": 0,
    "max_length": 64,
    "doc_stride": 16,
}
# Words of the tiny BERT's vocabulary (whole tokens): names of "countries" and "capitals".
WORDS = POSITIVE + NEGATIVE + [w for words in GENRES.values() for w in words]
LONG_FILLER = "the movie was quite dull and the plot was boring . "


def capitals_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """``The capital of X is Y.`` after a distractor sentence; ``What is the capital of X?``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x, y, z = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        distractor = f"{z} is a small town." if i % 2 else f"Many people visit {z}."
        rows.append((f"What is the capital of {x}?", f"{distractor} The capital of {x} is {y}.", y))
    return pd.DataFrame(rows, columns=["question", "context", "answer"])


HP = qa.validate_hyperparams(TINY_QA_HYPERPARAMS)


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The tiny BERT with a span head trained on 100 capitals rows: ``(Trained, holdout)``."""
    examples = qa.prepare(capitals_frame(120), HP)
    model = qa.train(
        qa.subset(examples, range(100)),
        base_model=str(tiny_bert),
        hyperparams=HP,
        workdir=tmp_path_factory.mktemp("qa_work"),
    )
    return model, qa.subset(examples, range(100, 120))


# -- rows


def test_missing_columns_name_the_convention() -> None:
    frame = capitals_frame(20).rename(columns={"context": "passage"})
    with pytest.raises(InvalidInput, match=r"needs the columns question, context and answer"):
        qa.prepare(frame, HP)


def test_null_context() -> None:
    frame = capitals_frame(20)
    frame.loc[2, "context"] = None
    with pytest.raises(
        InvalidInput, match=r"1 of 20 rows have a NULL context \(the first is row 3"
    ):
        qa.prepare(frame, HP)


def test_too_few_rows() -> None:
    with pytest.raises(InvalidInput, match=f"at least {qa.MIN_ROWS} rows.*got 4"):
        qa.prepare(capitals_frame(4), HP)


@pytest.mark.parametrize(
    ("answer", "context", "start"),
    [
        ("Paris", "Paris is in France; Paris is big.", 0),  # the first occurrence
        ("paris", "I like Paris and paris.", 17),  # exact case first
        ("PARIS", "I like Paris.", 7),  # else ignoring case
        ("Lyon", "I like Paris.", -1),
        ("", "I like Paris.", -1),
    ],
)
def test_answer_start(answer: str, context: str, start: int) -> None:
    assert qa.answer_start(answer, context) == start


def test_answers_are_found_in_their_contexts() -> None:
    frame = capitals_frame(20)
    frame.loc[0, "answer"] = "  " + frame.loc[0, "answer"].upper() + " "  # spaces, case
    examples = qa.prepare(frame, HP)
    for context, answer, start in zip(
        examples.contexts, examples.answers, examples.starts, strict=True
    ):
        assert context[start : start + len(answer)].lower() == answer.lower()


def test_answers_not_in_their_context_are_reported() -> None:
    frame = capitals_frame(30)
    for row in (3, 7, 8, 11, 20, 25, 29):
        frame.loc[row, "answer"] = "Atlantis"
    frame.loc[12, "answer"] = " "
    with pytest.raises(InvalidInput) as err:
        qa.prepare(frame, HP)
    message = err.value.message
    assert message.startswith("8 of 30 rows have an answer that is not in their context")
    assert "rows 4, 8, 9, 12, 13 and 3 more" in message
    assert "row 4: answer 'Atlantis', context '" in message
    assert "WHERE INSTR(context, answer) > 0" in message
    assert err.value.details == {"column": "answer", "bad_rows": 8, "rows": [4, 8, 9, 12, 13]}


def test_evaluation_rows_may_have_any_answer(trained: tuple[Any, Any]) -> None:
    frame = capitals_frame(3).assign(answer=["Atlantis", "Lyon", "Rome"])
    examples = qa.prepare_for(trained[0], frame)
    assert examples.starts == [-1, -1, -1]
    assert qa.evaluate(trained[0], examples)["exact_match"] == 0.0


# -- hyperparams


def test_defaults_are_documented_values() -> None:
    params = qa.validate_hyperparams(None)
    assert params == qa.DEFAULT_HYPERPARAMS
    assert (params["max_length"], params["doc_stride"], params["max_answer_length"]) == (
        256,
        127,
        30,
    )


def test_a_shorter_window_lowers_the_default_stride() -> None:
    assert qa.validate_hyperparams({"max_length": 128})["doc_stride"] == 63


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"doc_stride": 0}, "doc_stride must be a positive integer"),
        ({"max_answer_length": 2.5}, "max_answer_length must be a positive integer"),
        ({"max_length": 16}, "max_length must be at least 32"),
        ({"max_length": 64, "doc_stride": 32}, "less than half of max_length"),
        ({"doc_strid": 8}, "Did you mean doc_stride"),
    ],
)
def test_bad_hyperparams(values: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidOption, match=match):
        qa.validate_hyperparams(values)


# -- windows


def test_training_windows_of_a_long_context(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    context = LONG_FILLER * 6 + "the answer is brilliant ."
    examples = qa.Examples(["what is it ?"], [context], ["brilliant"], [context.index("brilliant")])
    windows = qa.windows(examples, tokenizer, max_length=32, doc_stride=8)
    assert len(windows) > 3
    assert all(len(w["input_ids"]) <= 32 for w in windows)
    spans = [(w["start_positions"], w["end_positions"]) for w in windows]
    assert spans[0] == (0, 0)  # the answer is not in the first window: [CLS]
    holding = [(w, s) for w, s in zip(windows, spans, strict=True) if s != (0, 0)]
    assert holding, spans
    for window, (start, end) in holding:
        assert tokenizer.decode(window["input_ids"][start : end + 1]) == "brilliant"


class _PointAt:
    """A stand-in span model that points at one token id wherever it is."""

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id

    def eval(self) -> _PointAt:
        return self

    def __call__(self, input_ids: Any, **kwargs: Any) -> Any:
        logits = (input_ids == self.token_id).float() * 10.0
        return SimpleNamespace(start_logits=logits, end_logits=logits)


def test_prediction_picks_the_best_span_of_all_windows(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    (token_id,) = tokenizer("brilliant", add_special_tokens=False)["input_ids"]
    meta = {"max_length": 32, "doc_stride": 8, "max_answer_length": 5}
    answerer = QuestionAnswerer(_PointAt(token_id), tokenizer, meta)
    context = LONG_FILLER * 6 + "and yet it was brilliant ."
    windows = encode_windows(tokenizer, ["what was it ?"], [context], 32, 8)
    assert len(windows["input_ids"]) > 3  # the answer is in a late window
    answer = answerer.predict(["what was it ?", "what ?"], [context, "dull and brilliant"])
    assert answer["prediction"] == ["brilliant", "brilliant"]
    assert answer["start"] == [context.index("brilliant"), 9]
    assert answer["end"] == [context.index("brilliant") + 9, 18]
    assert answer["score"][0] > 0.9


class _Span:
    """A stand-in span model: starts at one token id, ends at another."""

    def __init__(self, start_id: int, end_id: int) -> None:
        self.start_id, self.end_id = start_id, end_id

    def eval(self) -> _Span:
        return self

    def __call__(self, input_ids: Any, **kwargs: Any) -> Any:
        starts = (input_ids == self.start_id).float() * 10.0
        ends = (input_ids == self.end_id).float() * 10.0
        return SimpleNamespace(start_logits=starts, end_logits=ends)


def test_max_answer_length_per_query(tiny_bert: Path) -> None:
    """``USING max_answer_length = n``: the pyfunc param bounds the answer in tokens."""
    from transformers import AutoTokenizer

    from builtin_models.question_answerer_model import QuestionAnswererModel

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    dull, brilliant = tokenizer.convert_tokens_to_ids(["dull", "brilliant"])
    meta = {"max_length": 32, "doc_stride": 8, "max_answer_length": 5}
    pyfunc = QuestionAnswererModel()
    pyfunc.answerer = QuestionAnswerer(_Span(dull, brilliant), tokenizer, meta)
    frame = pd.DataFrame({"question": ["what ?"], "context": ["dull and brilliant"]})

    def answer(params: dict[str, Any] | None) -> str:
        return str(pyfunc.predict(None, frame, params)["prediction"][0])

    assert answer(None) == answer(qa.PARAMS_EXAMPLE) == "dull and brilliant"  # the model's 5
    for limit in (1, 2):  # one word is one token here
        assert 1 <= len(answer({"max_answer_length": limit}).split()) <= limit
    assert answer({"max_answer_length": 512}) == "dull and brilliant"
    for value, fragment in [
        (513, "max_answer_length must be in [1, 512] tokens (0: the model's own, 5), got 513"),
        (-1, "must be in [1, 512]"),
        (2.5, "max_answer_length must be a whole number, got 2.5"),
        ("long", "max_answer_length must be a whole number"),
        (True, "must be a whole number"),
    ]:
        with pytest.raises(ValueError) as err:
            answer({"max_answer_length": value})
        assert fragment in str(err.value)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) topk; this model takes "):
        answer({"topk": 2})


# -- training, metrics, predictions


def test_train_evaluate_predict(trained: tuple[Any, Any]) -> None:
    model, holdout = trained
    assert model.max_length == 64 and model.doc_stride == 16
    metrics = qa.evaluate(model, holdout)
    assert set(metrics) == {"exact_match", "f1", "test_rows"}
    assert metrics["test_rows"] == 20
    assert metrics["f1"] >= 0.5, metrics  # chance is far lower: any span of the context

    questions = [*holdout.questions[:5], None, "What is it?"]
    contexts = [*holdout.contexts[:5], "a context", ""]
    answer = model.answerer().predict(questions, contexts)
    assert set(answer) == set(OUTPUTS)
    for i in range(5):
        start, end = answer["start"][i], answer["end"][i]
        assert 0 <= start < end <= len(contexts[i])
        assert contexts[i][start:end] == answer["prediction"][i]
        assert 0.0 < answer["score"][i] <= 1.0
    assert [answer[k][5] for k in OUTPUTS] == [None] * 4  # a NULL question
    assert [answer[k][6] for k in OUTPUTS] == [None] * 4  # a context without tokens


def test_step_reports_and_a_bad_base_model(tiny_bert: Path, tmp_path: Path) -> None:
    steps: list[tuple[int, int, float, float | None]] = []
    examples = qa.prepare(capitals_frame(20), HP)
    qa.train(
        examples,
        base_model=str(tiny_bert),
        hyperparams={**HP, "num_train_epochs": 1},
        workdir=tmp_path,
        on_step=lambda *a, loss=None: steps.append((*a, loss)),
    )
    assert steps and steps[-1][0] == steps[-1][1]
    with pytest.raises(InvalidOption, match="Cannot load the base model"):
        qa.train(examples, base_model=str(tmp_path), hyperparams=HP, workdir=tmp_path)


def test_save_and_reload(trained: tuple[Any, Any], tmp_path: Path) -> None:
    model, holdout = trained
    qa.save(model, tmp_path / "saved")
    loaded = QuestionAnswerer.load(tmp_path / "saved")
    assert (loaded.max_length, loaded.doc_stride, loaded.max_answer_length) == (64, 16, 30)
    rows = (holdout.questions[:4], holdout.contexts[:4])
    assert loaded.predict(*rows) == model.answerer().predict(*rows)


def test_a_logged_run_serves_as_pyfunc(tiny_bert: Path, tmp_path: Path) -> None:
    from builtin_models import artifacts
    from builtin_models.training import TrainingRequest, run_training
    from tests.builtin_models.conftest import FrameReader

    frame = capitals_frame(60).rename(columns={"answer": "capital"})
    request = TrainingRequest(
        task="question_answering",
        model_name=str(tiny_bert),
        hyperparams={**TINY_QA_HYPERPARAMS, "num_train_epochs": 1},
        test_size=0.2,
        tracking_uri=artifacts.default_tracking_uri(tmp_path),
        rename={"capital": "answer"},  # PREDICT capital
    )
    result = run_training(FrameReader(frame), request)
    assert (result.train_rows, result.test_rows, result.labels) == (48, 12, [])
    assert {"exact_match", "f1", "train_loss"} <= set(result.metrics)
    pyfunc = artifacts.load_model(result.model_uri, result.tracking_uri)
    out = pyfunc.predict(frame[["question", "context"]].head(3))
    assert list(out.columns) == list(OUTPUTS)
    for context, text, start, end in zip(
        frame["context"].head(3), out["prediction"], out["start"], out["end"], strict=True
    ):
        assert context[start:end] == text
    assert qa.load(pyfunc).doc_stride == 16
    # The logged signature declares max_answer_length: MLflow passes it through.
    short = pyfunc.predict(frame[["question", "context"]].head(3), params={"max_answer_length": 1})
    assert all(" " not in text for text in short["prediction"])
