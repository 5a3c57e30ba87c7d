"""Claim tokens: proof that a caller is the one who submitted a job (issue 20, "abuse of the relay").

A job's claim token is HMAC-SHA256(key, job id), base64url (43 characters): answered in the 202 of
`POST /v1/jobs` (again on an idempotent retry of the same submission, which names the same job), never by any GET,
and stored nowhere, so no table holds a usable token. The key is STATUS_CLAIM_SECRET, else one made at random
the first time and kept in the job store (`service_secrets`), so every status replica derives the same tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from mintpipe.db.core import Conn, Database

SECRET_NAME = "claim_token_key"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ClaimTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, job_id: str) -> str:
        return _b64(hmac.new(self._key, b"claim:" + job_id.encode(), hashlib.sha256).digest())

    def check(self, job_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(job_id).encode(), token.encode("utf-8", "replace"))

    @classmethod
    async def load(cls, db: Database, configured: str | None = None) -> ClaimTokens:
        if configured:
            return cls(hashlib.sha256(b"mintpipe-claim:" + configured.encode()).digest())
        fresh = _b64(secrets.token_bytes(32))

        async def body(tx: Conn) -> str:
            await tx.execute("INSERT INTO service_secrets (name, value, created_at) VALUES (?,?,?) "
                             "ON CONFLICT(name) DO NOTHING", (SECRET_NAME, fresh, time.time()))
            return await tx.fetchval("SELECT value FROM service_secrets WHERE name = ?", (SECRET_NAME,))
        value = await db.transact(body)
        return cls(value.encode())
