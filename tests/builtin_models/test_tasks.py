"""The task registry: names, column conventions, and the unknown-task error."""

from __future__ import annotations

import pytest

from builtin_models.tasks import TASKS, get_task, task_names
from byom.errors import InvalidOption


def test_text_classification_conventions() -> None:
    task = get_task("text_classification")
    assert task.input_columns == ("text",)
    assert task.target_column == "labels"
    assert task.columns == ("text", "labels")
    assert task.deployment == "builtin_models.serving:ModelDeployment"


@pytest.mark.parametrize(
    "name", ["TEXT_CLASSIFICATION", "text-classification", " text_classification "]
)
def test_names_are_case_and_dash_insensitive(name: str) -> None:
    assert get_task(name).name == "text_classification"


def test_unknown_task_lists_the_tasks_and_suggests() -> None:
    with pytest.raises(InvalidOption) as err:
        get_task("text_clasification")
    message = err.value.message
    assert "Unknown task 'text_clasification'" in message
    assert "Did you mean text_classification?" in message
    assert "Available tasks: " + ", ".join(task_names()) in message
    assert err.value.code == "INVALID_OPTION"
    assert err.value.details["suggestion"] == "text_classification"


def test_unknown_task_without_a_close_name() -> None:
    with pytest.raises(InvalidOption, match=r"Unknown task 'zzz'\. Available tasks: "):
        get_task("zzz")


def test_every_task_implementation_provides_the_protocol() -> None:
    for task in TASKS.values():
        impl = task.load()
        for name in (
            "DEFAULT_HYPERPARAMS",
            "MODEL_CODE_PATH",
            "validate_hyperparams",
            "prepare",
            "stratify_keys",
            "subset",
            "train",
            "evaluate",
            "save",
            "labels",
        ):
            assert hasattr(impl, name), f"{task.implementation} lacks {name}"
        assert impl.MODEL_CODE_PATH.is_file()
