"""Import contracts: the leaves never depend on the front door, and only the executor talks
to the catalog and the user's databases.

Read from the source with ``ast`` (no imports run), so a violation fails here with the file
and the module it imported, whatever the import order at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("byom", "adapters", "catalog", "datasources")
# Modules that talk to the catalog database or the user's databases, and who may use them.
TALKERS = (
    "catalog.repository", "catalog.migrations", "catalog.versions", "catalog.liveness",
    "catalog.queries", "catalog.sessions", "catalog.tokens", "datasources",
)  # fmt: skip
TALKER_USERS = ("gateway/core.py", "gateway/executor/", "gateway/demo.py")


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (``from x import y`` gives ``x``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    return files


def _is(module: str, name: str) -> bool:
    return module == name or module.startswith(name + ".")


@pytest.mark.parametrize("package", LEAVES)
def test_leaves_never_import_the_gateway(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _sources(package)
        for module in sorted(_imports(path))
        if _is(module, "gateway") or _is(module, "builtin_models")
    ]
    assert offenders == []


def test_the_error_kernel_imports_nothing_of_the_project() -> None:
    project = ("gateway", "adapters", "catalog", "datasources", "builtin_models")
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _sources("byom")
        for module in sorted(_imports(path))
        if any(_is(module, p) for p in project)
    ]
    assert offenders == []


def test_only_the_executor_talks_to_the_catalog_and_datasources() -> None:
    offenders = []
    for path in _sources("gateway"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(TALKER_USERS):
            continue
        for module in sorted(_imports(path)):
            if any(_is(module, t) for t in TALKERS):
                offenders.append(f"{rel} imports {module}")
    assert offenders == []


def test_the_contract_would_catch_a_violation(tmp_path: Path) -> None:
    """The checker itself sees the import forms it must catch."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import gateway.core\nfrom gateway.errors import X\nfrom . import sibling\n"
        "def f():\n    from catalog.repository import Catalog\n"
    )
    assert _imports(bad) == {"gateway.core", "gateway.errors", "catalog.repository"}


def test_the_gateway_imports_no_ml_framework(tmp_path: Path) -> None:
    """A gateway that never sees a built-in statement never imports torch, transformers,
    Ray or MLflow - nor pandas, numpy or pyarrow: started and answering SQL, its start-up time
    and memory stay those of a web service (about 90 MiB; benchmarks/gateway_footprint.py)."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from gateway.core import Gateway\n"
        "import gateway.server, gateway.cli\n"
        "async def main():\n"
        f"    gw = await Gateway.start({str(tmp_path)!r})\n"
        "    for sql in ('SHOW MODELS', 'SELECT 1 AS one', 'DESCRIBE nosuch',\n"
        "                'SELECT * FROM mindsdb.models_versions'):\n"
        "        try:\n"
        "            await gw.sql(sql)\n"
        "        except Exception:\n"
        "            pass\n"
        "    await gw.close()\n"
        "asyncio.run(main())\n"
        "names = ('torch', 'transformers', 'ray', 'mlflow', 'pandas', 'numpy', 'pyarrow')\n"
        "print(','.join(m for m in names if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""
