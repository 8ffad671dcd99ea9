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

from byom.errors import ModelNotFound
from catalog.records import DEFAULT_PROJECT, PROJECT_ALIASES, PredictorRecord, project_key

__all__ = ["DEFAULT_PROJECT", "PROJECT_ALIASES", "not_in_project"]


def not_in_project(record: PredictorRecord, project: str) -> ModelNotFound:
    """``p2.m`` names a model m that lives in another project."""
    home = project_key(record.namespace)
    return ModelNotFound(
        f"Model '{record.name}' is not in project '{project}': it is in project '{home}'. "
        f"Did you mean {home}.{record.name}?",
        model=record.name,
        project=project,
        suggestion=f"{home}.{record.name}",
    )
