"""Projects: the namespaces of models (``proj.m``), as the planner and executor name them.

* ``mindsdb`` always exists and cannot be dropped; ``model`` and ``models`` are other names
  of it. ``CREATE PROJECT p`` makes another one; ``DROP PROJECT p`` drops an empty one.
* ``CREATE MODEL p.m`` puts model m in project p (no prefix: the session's default project,
  ``mindsdb`` unless ``USE p`` chose another). ``p.m`` wherever a model is named (SELECT,
  JOIN, DESCRIBE, DROP MODEL) must be the project m is in.
* A model's name is unique across all projects (the catalog keeps one name space), so an
  unqualified name always means one model, whatever the default project.
* A project cannot have a datasource's name, nor a datasource a project's, so ``x.y`` means
  one thing.
"""

from __future__ import annotations

from collections.abc import Iterable

from byom.errors import ModelNotFound, NotFound, did_you_mean
from catalog.records import DEFAULT_PROJECT, PROJECT_ALIASES, PredictorRecord, project_key

__all__ = [
    "DEFAULT_PROJECT",
    "PROJECT_ALIASES",
    "canonical",
    "not_in_project",
    "project_not_found",
]


def canonical(name: str | None) -> str:
    """The project's stored name (``model``/``models`` -> ``mindsdb``)."""
    return project_key(name)


def project_not_found(name: str, known: Iterable[str]) -> NotFound:
    """``Project 'x' not found. Did you mean y? See SHOW PROJECTS.`` (PROJECT_NOT_FOUND)."""
    hint = did_you_mean(name, known)
    text = f"Project '{name}' not found." + (f" Did you mean {hint}?" if hint else "")
    return NotFound(
        text + " See SHOW PROJECTS.", code="PROJECT_NOT_FOUND", project=name, suggestion=hint
    )


def not_in_project(record: PredictorRecord, project: str) -> ModelNotFound:
    """``p2.m`` names a model m that lives in another project."""
    home = canonical(record.namespace)
    return ModelNotFound(
        f"Model '{record.name}' is not in project '{project}': it is in project '{home}'. "
        f"Did you mean {home}.{record.name}?",
        model=record.name,
        project=project,
        suggestion=f"{home}.{record.name}",
    )
