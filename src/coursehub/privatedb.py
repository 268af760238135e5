"""coursehub's own small SQLite files (mode 0600, coursehub's account only): each opened
the same way and changed in short `BEGIN IMMEDIATE` transactions, so two processes (the
hub and the CLI) never interleave a read and a write. Imports nothing of coursehub but
the secrets module's file rule."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from .secrets import private_file


class PrivateDB:
    """A private SQLite file with its tables (`schema`, made when missing)."""

    schema: tuple[str, ...] = ()

    def __init__(self, path: str | Path):
        self.path = Path(path)
        private_file(self.path)
        with closing(self._connect()) as db:
            for statement in self.schema:
                db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def connection(self) -> closing[sqlite3.Connection]:
        """A connection in autocommit (one statement, one step), closed when the block ends."""
        return closing(self._connect())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One step that reads and writes as a whole: committed when the block ends
        (also by `return`), rolled back when it raises."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()
