"""Numbered SQL migrations, one folder per backend inside its package
(``store/<backend>/migrations/NNNN_name.sql``), and the check of a schema version."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from offload.errors import SchemaError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(backend: str) -> list[Migration]:
    """All migrations of a backend, in version order."""
    # Joined as paths, not imported: reading the PostgreSQL migrations loads no driver.
    folder = resources.files("offload.store") / backend / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        version = int(name.split("_", 1)[0])
        found.append(Migration(version, name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def latest_version(backend: str) -> int:
    return migrations(backend)[-1].version


def check_version(found: int, backend: str, where: str) -> None:
    """Raise SchemaError unless ``found`` is the version this code expects."""
    expected = latest_version(backend)
    if found > expected:
        raise SchemaError(
            f"{where}: database schema version {found} is newer than this offload "
            f"understands ({expected}); upgrade offload on this machine"
        )
    if found < expected:
        raise SchemaError(
            f"{where}: database schema version {found} is older than this offload "
            f"expects ({expected}); run `offload migrate`"
        )
