"""Versioned plain-SQL migrations, applied in order under an advisory lock; safe to run twice.

Files live in cloud/db/migrations as NNNN_name.sql. Variants: NNNN_name.timescale.sql runs only
where the TimescaleDB extension is usable (installed, or creatable: packaged *and* preloaded),
NNNN_name.plain.sql only where it is not. A version
may have a base file and variants: the base runs first, then the fitting variant, in one
transaction, and the version number NNNN is recorded once. Ranges: 0001-0099 core, 0100-0199
ingest and footfall, 0200-0299 CRM, 0300-0399 predictive analytics.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from cloud.core.errors import CloudError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescale|plain))?\.sql$")
_LOCK_KEY = 0x6D616C6C  # 'mall'


class MigrationError(CloudError):
    """A migration failed; the message names it and gives the database's own error."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    variant: str | None
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover() -> list[Migration]:
    """All migration files shipped in cloud/db/migrations, sorted by version."""
    found = []
    for entry in resources.files("cloud.db.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], m[3], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda x: (x.version, x.variant or ""))


def timescaledb_available(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """True when the TimescaleDB extension is installed in this database or can be created
    here. Being listed in pg_available_extensions is not enough: the library must also be
    preloaded (shared_preload_libraries), and only a trial CREATE EXTENSION tells reliably
    (that setting is hidden from non-superusers, who may lack the right to create it too)."""
    row = conn.execute(
        "SELECT installed_version IS NOT NULL FROM pg_available_extensions"
        " WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None:
        return False
    return bool(row[0]) or _timescaledb_creatable(conn.info.dsn, conn.info.password)


def _timescaledb_creatable(dsn: str, password: str | None) -> bool:
    # A separate session, rolled back: a failed load of the library can leave a session
    # unusable (TimescaleDB may even end it), and the migration's session must stay clean.
    try:
        with psycopg.connect(dsn, password=password) as probe:
            probe.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            probe.rollback()
    except psycopg.Error as exc:
        log.warning(
            "timescaledb is available but cannot be created here; using plain PostgreSQL",
            extra={"reason": str(exc).strip()},
        )
        return False
    return True


def migrate(conninfo: str) -> list[int]:
    """Apply pending migrations; returns the versions applied in this call. A failure raises
    MigrationError with the database's error (never an error of the cleanup after it)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            applied_now = _apply_pending(conn)
        except BaseException:
            _unlock_quietly(conn)
            raise
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _apply_pending(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    applied_now: list[int] = []
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, variant text,"
        " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    for mig in plan(discover(), timescale=timescaledb_available(conn)):
        if mig.version in done:
            continue
        log.info("applying migration", extra={"version": mig.version, "migration": mig.name})
        try:
            with conn.transaction():
                conn.execute(mig.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, variant, checksum)"
                    " VALUES (%s, %s, %s, %s)",
                    (mig.version, mig.name, mig.variant, mig.checksum),
                )
        except psycopg.Error as exc:
            variant = f" ({mig.variant})" if mig.variant else ""
            raise MigrationError(
                f"migration {mig.version:04d}_{mig.name}{variant} failed: {str(exc).strip()}"
            ) from exc
        applied_now.append(mig.version)
    return applied_now


def _unlock_quietly(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    # The error being raised is the one to report: an unlock that fails too (the server may
    # have closed the session, which also releases the lock) must not replace it.
    if conn.closed:
        return
    try:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    except psycopg.Error:
        log.warning("could not release the migration lock", exc_info=True)


def plan(migrations: list[Migration], *, timescale: bool) -> list[Migration]:
    """One migration per version: its base file, then the variant that fits this database."""
    parts: dict[int, list[Migration]] = {}
    for mig in migrations:
        if not _skip_variant(mig, timescale):
            parts.setdefault(mig.version, []).append(mig)
    steps = []
    for version, files in sorted(parts.items()):
        files.sort(key=lambda m: m.variant is not None)  # the base file first
        variant = next((m.variant for m in files if m.variant), None)
        sql = "\n".join(m.sql for m in files)
        steps.append(Migration(version, files[0].name, variant, sql))
    return steps


def _skip_variant(mig: Migration, timescale: bool) -> bool:
    return (mig.variant == "timescale" and not timescale) or (mig.variant == "plain" and timescale)
