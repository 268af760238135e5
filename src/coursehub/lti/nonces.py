"""Durable replay protection for launches.

A launch's nonce is recorded only after its signature checked out (so nobody
can burn a nonce they did not sign), in SQLite in the installation's state
folder, mode 0600, so that a replay is refused after a hub restart too. A
nonce is kept as long as its timestamp could still pass the launch's window;
after that the timestamp check refuses the replay on its own.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ..privatedb import PrivateDB

DEFAULT_WINDOW = 30  # seconds either side of now, as ltiauthenticator's LTI 1.1 check


class NonceStore(PrivateDB):
    schema = (
        "CREATE TABLE IF NOT EXISTS nonce ("
        " issuer TEXT NOT NULL, nonce TEXT NOT NULL, ts INTEGER NOT NULL,"
        " PRIMARY KEY (issuer, nonce))",
    )

    def __init__(self, path: str | Path, window: int = DEFAULT_WINDOW):
        super().__init__(path)  # nonces and consumer keys are nobody else's
        self.window = window

    def use(self, issuer: str, nonce: str, timestamp: float, now: float | None = None) -> bool:
        """Record `nonce` of `issuer` (a consumer key or an LTI 1.3 issuer).

        Returns False when it was used already (a replay). Call it only once the
        launch's signature is known to be good.
        """
        now = time.time() if now is None else now
        with self.transaction() as db:
            # forget what the timestamp window refuses anyway (with a margin for clock steps)
            db.execute("DELETE FROM nonce WHERE ts < ?", (int(now) - 2 * self.window - 1,))
            try:
                db.execute(
                    "INSERT INTO nonce (issuer, nonce, ts) VALUES (?, ?, ?)",
                    (issuer, nonce, int(timestamp)),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def __len__(self) -> int:
        with self.connection() as db:
            return db.execute("SELECT COUNT(*) FROM nonce").fetchone()[0]
