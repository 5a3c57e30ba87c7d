"""Who may see and do what on the operators' routes.

Two roles: `admin` (MINTPIPE_ADMIN_TOKEN: sees and acts) and `viewer` (MINTPIPE_ADMIN_READONLY_TOKEN: sees
everything, can do nothing). Two ways in:

- `Authorization: Bearer <token>` (the CLI, scripts): no cookie is involved, so no CSRF check is needed;
- a session cookie from the login form: HttpOnly (page scripts cannot read it), SameSite=Strict (no other site
  can make the browser send it), signed with a key derived from the tokens (so rotating a token ends every
  session, and several status replicas accept each other's sessions). Every action made with a session must
  also carry the session's CSRF token in `X-CSRF-Token`; the page gets it from GET /v1/admin/session, never
  from its HTML.

Wrong tokens are rate-limited per client address; once locked out, even the right token is refused until the
lockout ends, so the limit cannot be probed for the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from mintpipe.limits.memory import KeyedRateLimiter
from status.errors import ApiError

Role = Literal["admin", "viewer"]
COOKIE = "mintpipe_admin"
SESSION_SECONDS = 8 * 3600
# Ten wrong tokens a minute per address, then a lockout until the bucket refills.
FAILURES_PER_MINUTE = 10


@dataclass(frozen=True)
class Principal:
    role: Role
    via: Literal["bearer", "session"]
    session: str = ""  # the session's nonce (a session's CSRF token is derived from it)

    @property
    def actor(self) -> str:
        """What the audit list records as `who`: the role and how it came in (tokens are never recorded)."""
        return f"{self.role} ({self.via}{' ' + self.session[:8] if self.session else ''})"


class OpsAuth:
    def __init__(self, admin_token: str | None, readonly_token: str | None, client_ip) -> None:
        self.tokens: dict[Role, bytes] = {}
        if admin_token:
            self.tokens["admin"] = admin_token.encode()
        if readonly_token and readonly_token != admin_token:
            self.tokens["viewer"] = readonly_token.encode()
        material = b"\0".join([self.tokens.get("admin", b""), self.tokens.get("viewer", b""), b"mintpipe-session"])
        self._key = hashlib.sha256(material).digest()
        self.client_ip = client_ip
        # A bucket one short: the failure that empties it (the tenth) already locks the address out.
        self._failures = KeyedRateLimiter(FAILURES_PER_MINUTE, 60, FAILURES_PER_MINUTE - 1, max_keys=10_000)
        self._locked: OrderedDict[str, float] = OrderedDict()

    # --- tokens -----------------------------------------------------------------------------------------
    def _guard(self, request: Request) -> str:
        ip = self.client_ip(request)
        until = self._locked.get(ip, 0.0)
        if until > time.monotonic():
            wait = math.ceil(until - time.monotonic())
            raise ApiError(429, "rate_limited", f"too many wrong admin tokens from this address; retry in {wait} s",
                           "token", {"Retry-After": str(wait)})
        return ip

    def _failed(self, ip: str) -> None:
        wait = self._failures.acquire(ip)
        if wait > 0:
            self._locked[ip] = time.monotonic() + wait
            self._locked.move_to_end(ip)
            while len(self._locked) > 10_000:
                self._locked.popitem(last=False)

    def role_of(self, request: Request, presented: str) -> Role:
        """The role a token grants; a wrong one counts against the caller's address (401, then 429)."""
        ip = self._guard(request)
        given = presented.encode()
        role: Role | None = None
        for name, token in self.tokens.items():
            if hmac.compare_digest(given, token):
                role = name
        if role is None:
            self._failed(ip)
            raise ApiError(401, "unauthorized", "wrong admin token" if self.tokens else
                           "no admin token is configured on this bridge (MINTPIPE_ADMIN_TOKEN)", "token",
                           {"WWW-Authenticate": "Bearer"})
        return role

    # --- sessions -----------------------------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload.encode(), "sha256").digest()).decode().rstrip("=")

    def new_session(self, role: Role) -> str:
        payload = f"{role}.{int(time.time()) + SESSION_SECONDS}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._sign(payload)}"

    def read_session(self, cookie: str) -> Principal | None:
        payload, _, signature = cookie.rpartition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        role, expires, nonce = (payload.split(".", 2) + ["", ""])[:3]
        if role not in self.tokens or not expires.isdigit() or int(expires) < time.time():
            return None
        return Principal(role, "session", nonce)  # type: ignore[arg-type]

    def csrf_token(self, principal: Principal) -> str:
        return self._sign(f"csrf.{principal.session}")

    # --- the dependencies -------------------------------------------------------------------------------------
    def principal(self, request: Request) -> Principal:
        """Whoever is calling, by bearer token or session cookie; 401 otherwise."""
        scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
        if scheme:
            if scheme.lower() != "bearer" or not presented:
                raise ApiError(401, "unauthorized", "use Authorization: Bearer <token>", "Authorization",
                               {"WWW-Authenticate": "Bearer"})
            return Principal(self.role_of(request, presented), "bearer")
        cookie = request.cookies.get(COOKIE)
        found = self.read_session(cookie) if cookie else None
        if found is None:
            raise ApiError(401, "unauthorized", "sign in at /admin/login, or send Authorization: Bearer <token>",
                           "Authorization", {"WWW-Authenticate": "Bearer"})
        return found

    def operator(self, request: Request) -> Principal:
        """An admin, and for a session, with the session's CSRF token in X-CSRF-Token."""
        who = self.principal(request)
        if who.role != "admin":
            raise ApiError(403, "forbidden", "the read-only token can see everything but change nothing", "role")
        if who.via == "session":
            given = request.headers.get("x-csrf-token") or ""
            if not hmac.compare_digest(given.encode(), self.csrf_token(who).encode()):
                raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token: reload the dashboard and try again",
                               "X-CSRF-Token")
        return who
