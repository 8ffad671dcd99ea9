"""text_classification: row checks, hyperparams, training, metrics and predictions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from builtin_models import hf_training
from builtin_models import text_classification as tc
from byom.errors import InvalidInput, InvalidOption
from tests.builtin_models.conftest import TINY_HYPERPARAMS, genre_frame, sentiment_frame

HP = tc.validate_hyperparams(TINY_HYPERPARAMS)


def _train(frame: pd.DataFrame, base: Path, workdir: Path, **extra: object) -> tc.Trained:
    params = tc.validate_hyperparams({**TINY_HYPERPARAMS, **extra})
    examples = tc.prepare(frame, params)
    return tc.train(examples, base_model=str(base), hyperparams=params, workdir=workdir)


# -- rows


def test_missing_columns_name_the_convention() -> None:
    frame = pd.DataFrame({"review": ["a"] * 20, "labels": ["x", "y"] * 10})
    with pytest.raises(InvalidInput, match=r"needs the columns text and labels.*review, labels"):
        tc.prepare(frame, HP)


def test_columns_are_case_insensitive() -> None:
    frame = sentiment_frame(20).rename(columns={"text": "TEXT", "labels": "Labels"})
    assert len(tc.prepare(frame, HP).texts) == 20


def test_null_text() -> None:
    frame = sentiment_frame(20)
    frame.loc[3, "text"] = None
    frame.loc[5, "text"] = None
    with pytest.raises(InvalidInput) as err:
        tc.prepare(frame, HP)
    assert "2 of 20 rows have a NULL text (the first is row 4)" in err.value.message
    assert "WHERE text IS NOT NULL" in err.value.message


def test_null_labels() -> None:
    frame = sentiment_frame(20)
    frame.loc[0, "labels"] = None
    with pytest.raises(InvalidInput, match="NULL labels"):
        tc.prepare(frame, HP)


def test_too_few_rows() -> None:
    with pytest.raises(InvalidInput, match=f"at least {tc.MIN_ROWS} rows.*got 4"):
        tc.prepare(sentiment_frame(4), HP)


def test_one_class_only() -> None:
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(20)], "labels": ["spam"] * 20})
    with pytest.raises(InvalidInput, match=r"only one class \('spam'\)"):
        tc.prepare(frame, HP)


def test_labels_keep_their_type() -> None:
    frame = pd.DataFrame({"text": [f"row {i}" for i in range(20)], "labels": [0, 1] * 10})
    examples = tc.prepare(frame, HP)
    assert examples.labels == [0, 1]
    assert all(type(t) is int for t in examples.targets)
    assert not examples.multi_label


def test_multi_label_is_detected_and_can_be_forced_off() -> None:
    frame = genre_frame(30)
    examples = tc.prepare(frame, HP)
    assert examples.multi_label
    assert examples.labels == ["Comedy", "Crime", "Drama"]
    assert all(isinstance(t, tuple) for t in examples.targets)
    single = tc.prepare(frame, {**HP, "multi_label": False})
    assert not single.multi_label
    assert "Comedy, Crime" in single.labels


# -- hyperparams


def test_defaults_are_documented_values() -> None:
    params = tc.validate_hyperparams(None)
    assert params == tc.DEFAULT_HYPERPARAMS
    assert params["num_train_epochs"] == 3 and params["max_length"] == 128


def test_unknown_hyperparam_suggests() -> None:
    with pytest.raises(InvalidOption, match="Did you mean learning_rate"):
        tc.validate_hyperparams({"learning_rat": 1e-4})


def test_gateway_owned_hyperparams_are_refused() -> None:
    with pytest.raises(InvalidOption, match="output_dir is set by the gateway"):
        tc.validate_hyperparams({"output_dir": "/tmp/x"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_length", 0),
        ("max_length", "64"),
        ("threshold", 1.5),
        ("multi_label", "yes"),
        ("num_train_epochs", "3"),
        ("learning_rate", -1),
        ("per_device_train_batch_size", 0),
        ("per_device_train_batch_size", 8.5),
    ],
)
def test_bad_hyperparam_values(key: str, value: object) -> None:
    with pytest.raises(InvalidOption, match=key):
        tc.validate_hyperparams({key: value})


def test_bad_training_arguments_value(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match="Invalid hyperparams"):
        _train(sentiment_frame(40), tiny_bert, tmp_path, lr_scheduler_type="no-such-schedule")


# -- training, metrics, predictions


def test_single_label_train_evaluate_predict(tiny_bert: Path, tmp_path: Path) -> None:
    steps: list[tuple[int, int, float, float | None]] = []
    frame = sentiment_frame(200)
    params = tc.validate_hyperparams(TINY_HYPERPARAMS)
    examples = tc.prepare(frame, params)
    train, test = tc.subset(examples, range(150)), tc.subset(examples, range(150, 200))
    trained = tc.train(
        train,
        base_model=str(tiny_bert),
        hyperparams=params,
        workdir=tmp_path,
        on_step=lambda *a, loss=None: steps.append((*a, loss)),
    )
    assert steps[-1][0] == steps[-1][1] and steps[-1][2] == pytest.approx(4.0)
    assert [s[0] for s in steps] == list(range(1, len(steps) + 1))
    assert all(s[3] is not None and s[3] > 0 for s in steps)  # each step's loss
    metrics = tc.evaluate(trained, test)
    assert set(metrics) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "test_rows"}
    assert metrics["accuracy"] >= 0.8, metrics  # well above chance (0.5) on any machine
    assert metrics["roc_auc"] >= 0.85
    assert metrics["test_rows"] == 50
    matrix = metrics["confusion_matrix"]
    assert matrix["labels"] == ["negative", "positive"]
    assert sum(map(sum, matrix["matrix"])) == 50

    answer = trained.classifier().predict(["a great and funny film", None, "dull boring plot"])
    assert answer["prediction"] == ["positive", None, "negative"]
    assert answer["confidence"][1] is None and answer["probabilities"][1] is None
    probs = answer["probabilities"][0]
    assert set(probs) == {"negative", "positive"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert answer["confidence"][0] == max(probs.values())


def test_multi_label_train_and_predict(tiny_bert: Path, tmp_path: Path) -> None:
    frame = genre_frame(240)
    params = tc.validate_hyperparams({**TINY_HYPERPARAMS, "num_train_epochs": 8})
    examples = tc.prepare(frame, params)
    trained = tc.train(
        tc.subset(examples, range(180)),
        base_model=str(tiny_bert),
        hyperparams=params,
        workdir=tmp_path,
    )
    metrics = tc.evaluate(trained, tc.subset(examples, range(180, 240)))
    for key in ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss", "accuracy", "f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["f1_micro"] >= 0.6, metrics
    assert metrics["accuracy"] == metrics["subset_accuracy"]
    assert len(metrics["confusion_matrix"]["matrices"]) == 3

    answer = trained.classifier().predict(["detective murder police heist", "x"])
    assert "Crime" in answer["prediction"][0].split(", ")
    probs = answer["probabilities"][0]
    assert set(probs) == {"Comedy", "Crime", "Drama"}
    assert sum(probs.values()) != pytest.approx(1.0)  # independent sigmoids
    chosen = {k for k, v in probs.items() if v >= 0.5}
    assert set(filter(None, answer["prediction"][0].split(", "))) == chosen


def test_a_training_split_of_one_class(tiny_bert: Path, tmp_path: Path) -> None:
    frame = sentiment_frame(40).sort_values("labels", ignore_index=True)
    examples = tc.prepare(frame, HP)
    with pytest.raises(InvalidInput, match="training split has only one class"):
        tc.train(
            tc.subset(examples, range(20)),
            base_model=str(tiny_bert),
            hyperparams=HP,
            workdir=tmp_path,
        )


def test_out_of_memory_is_a_clear_error(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def boom(self: object, *args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(hf_training.Trainer, "train", boom)
    with pytest.raises(InvalidOption) as err:
        _train(sentiment_frame(40), tiny_bert, tmp_path)
    assert err.value.code == "OUT_OF_MEMORY"
    assert "per_device_train_batch_size" in err.value.message


def test_save_and_reload(tiny_bert: Path, tmp_path: Path) -> None:
    from builtin_models.text_classifier_model import TextClassifier

    frame = pd.DataFrame({"text": sentiment_frame(60)["text"], "labels": [1, 0] * 30})
    trained = _train(frame, tiny_bert, tmp_path / "work")
    tc.save(trained, tmp_path / "saved")
    loaded = TextClassifier.load(tmp_path / "saved")
    assert loaded.labels == [0, 1]
    texts = frame["text"].head(5).tolist()
    assert loaded.predict(texts) == trained.classifier().predict(texts)
    assert all(type(p) is int for p in loaded.predict(texts)["prediction"])
