"""CREATE PROJECT, DROP PROJECT, USE and SET @var (the session's defaults and variables)."""

from __future__ import annotations

from byom.errors import ProjectNotFound
from gateway import statements as st
from gateway.executor.catalog_tables import PROJECT_COLUMNS
from gateway.executor.services import Services
from gateway.plans import UsePlan
from gateway.result import Result
from gateway.session import Session


def create(services: Services, p: st.CreateProject) -> Result:
    """Store the project (the planner checked no datasource has its name)."""
    if services.catalog.find_project(p.name) is not None:
        if p.if_not_exists:
            return Result(message=f"Project '{p.name}' already exists; nothing changed.")
    record = services.catalog.add_project(p.name)  # PROJECT_EXISTS when taken
    row = [record.name, 0, record.created_at.isoformat()]
    return Result(columns=list(PROJECT_COLUMNS), rows=[row])


def drop(services: Services, p: st.DropProject) -> Result:
    """Forget an empty project; one that still has models is refused, naming them."""
    if services.catalog.find_project(p.name) is None:
        if p.if_exists:
            return Result(message=f"Project '{p.name}' does not exist; nothing dropped.")
        known = [project.name for project in services.catalog.list_projects()]
        raise ProjectNotFound.named(p.name, known)
    services.catalog.drop_project(p.name)  # PROJECT_NOT_EMPTY, atomically
    return Result(message=f"Project '{p.name}' dropped.")


def use(session: Session, p: UsePlan) -> Result:
    """Set the session's default datasource or default project."""
    if p.datasource is not None:
        session.datasource = p.datasource
        return Result(message=f"Using datasource '{p.datasource}' for unqualified table names.")
    session.project = p.project
    return Result(message=f"Using project '{p.project}' for new models.")


def set_variables(session: Session, p: st.SetVariables) -> Result:
    """``SET @a = ...``: keep the values for the rest of the session; answer the message."""
    for name, value in p.values:
        session.variables[name] = value
    if p.message is not None:
        return Result(message=p.message)
    names = ", ".join(f"@{name}" for name, _ in p.values)
    return Result(message=f"Set {names}.")
