"""The pin service: never the same content twice, never over the shared rate limit or the monthly budget,
never a request while the backend asked any replica to wait (429 Retry-After), and never a CID we did not
compute ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from mintpipe.core.cid import cid_of_file
from mintpipe.messaging.consumer import JobCancelled, ParkError, PermanentError, TransientError
from mintpipe.objects.ipfs import LocalIpfsStore
from mintpipe.pin_ledger import PinLedger
from mintpipe.runtime.log import get_logger
from pinner.backends import BackendRateLimited, LocalBackend, PinBackend

log = get_logger(__name__)
T = TypeVar("T")

# Waiting for a request slot longer than this parks the job in a retry tier instead of holding a consumer.
# A shorter wait is slept out (no busy wait; the replica's other messages go on): the shared window says
# exactly when the slot frees, and a retry tier would round the wait up (measured: 3 pinners at 10 requests
# per 6 s took 91 s for 38 requests with a 2 s bound, against the ~23 s the limit allows).
MAX_INLINE_WAIT = 10.0
# A replica's claim on a CID it is uploading is renewed while the upload runs; if the replica dies, the claim
# lapses this long after its last renewal and another replica may upload. Another replica's claim is waited
# out inline this long (uploads are usually quick), longer in a retry tier.
UPLOAD_CLAIM_TTL = 10.0
CLAIM_INLINE_WAIT = 2.0


class IntegrityError(PermanentError):
    """The backend says the content has another CID than the one we computed: something is corrupt."""


class PinService:
    def __init__(self, backend: PinBackend, ledger: PinLedger, local: LocalIpfsStore, *, rate_limit: int,
                 rate_window: float, monthly_pins: int | None) -> None:
        self.backend = backend
        self.ledger = ledger
        self.local = local
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.monthly_pins = monthly_pins
        self.remote = not isinstance(backend, LocalBackend)
        self.counts: Counter[str] = Counter()

    async def _request_slot(self) -> None:
        """Return once this replica may send one request: within the rate limit shared by all replicas, and
        not before the time the backend's last 429 asked every replica to wait. A short wait is slept out; a
        longer one parks the job in a retry tier without using up an attempt (the wait is not the job's fault)."""
        if not self.remote:
            return
        while True:
            wait = await self.ledger.acquire_request_slot(self.rate_limit, self.rate_window)
            if wait == 0:
                return
            # Only for the message and the counters: the ledger already folded the block into `wait`.
            told = await self.ledger.blocked_until() > time.time()
            kind = "retry_after" if told else "rate"
            self.counts[f"{kind}_waits"] += 1
            if wait > MAX_INLINE_WAIT:  # the retry tier's delay is logged by the consumer
                reason = (f"{self.backend.name} answered 429 and asked every replica to wait {wait:.0f}s more" if told
                          else f"{self.backend.name}: shared rate limit of {self.rate_limit} requests per "
                               f"{self.rate_window:.0f}s reached")
                raise TransientError(reason, retry_after=wait, counts=False)
            self.counts[f"{kind}_wait_seconds"] += wait
            await asyncio.sleep(wait)

    async def _call_backend(self, request: Callable[[], Awaitable[T]],
                            cancelled: Callable[[], bool] | None = None) -> T:
        """One backend request within the shared limits. A 429's Retry-After is recorded in the shared ledger
        before the job sees the error, so no replica (this one's other jobs included) calls until it has passed."""
        await self._request_slot()
        # The slot may have been waited for: an operator's cancel meanwhile sends nothing more.
        if cancelled is not None and await asyncio.to_thread(cancelled):
            raise JobCancelled
        try:
            return await request()
        except BackendRateLimited as exc:
            self.counts["rate_limited"] += 1
            if exc.retry_after:
                until = await self.ledger.block_requests(exc.retry_after)
                log.warning("backend asked us to wait; every replica holds off", backend=self.backend.name,
                            retry_after=exc.retry_after, blocked_for=round(until - time.time(), 1))
            raise

    async def pin(self, path: Path, content_type: str, name: str, job_id: str, keyvalues: dict[str, str],
                  cancelled: Callable[[], bool] | None = None) -> str:
        """Pin one file; its CID. `cancelled` is asked right before the upload itself (after the lookups, which
        may wait on the rate limit or a slow backend): an operator's cancel meanwhile uploads nothing more."""
        # No copy in the local store when pinning elsewhere: it would hold every asset a second time, forever
        # (about 10 MB a job). The local store is kept only where it is the pinning backend.
        cid = await asyncio.to_thread(cid_of_file, path)
        if await self.ledger.is_pinned(cid):
            self.counts["skipped_known"] += 1
            return cid
        async with self._upload_claim(cid):
            # Whoever held the claim before us may have pinned it meanwhile.
            if await self.ledger.is_pinned(cid):
                self.counts["skipped_known"] += 1
                return cid
            await self._pin_claimed(path, content_type, name, job_id, keyvalues, cid, cancelled)
        return cid

    @contextlib.asynccontextmanager
    async def _upload_claim(self, cid: str) -> AsyncIterator[None]:
        """Only one replica at a time checks-then-uploads a CID: a duplicate delivery of the same pin job often
        runs on two replicas at once, and both would see the CID as not pinned yet and both upload it."""
        owner, waited = uuid.uuid4().hex, 0.0
        while (wait := await self.ledger.claim_upload(cid, owner, UPLOAD_CLAIM_TTL)) > 0:
            if waited >= CLAIM_INLINE_WAIT:
                raise TransientError("another replica is uploading the same content right now", retry_after=wait)
            self.counts["claim_waits"] += 1
            await asyncio.sleep(0.1)
            waited += 0.1
        renewing = asyncio.create_task(self._renew_claim(cid, owner))
        try:
            yield
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await self.ledger.release_upload(cid, owner)

    async def _renew_claim(self, cid: str, owner: str) -> None:
        while True:
            await asyncio.sleep(UPLOAD_CLAIM_TTL / 3)
            await self.ledger.claim_upload(cid, owner, UPLOAD_CLAIM_TTL)

    async def _pin_claimed(self, path: Path, content_type: str, name: str, job_id: str,
                           keyvalues: dict[str, str], cid: str, cancelled: Callable[[], bool] | None) -> None:
        # The ledger can miss a pin (a crash between upload and ledger write): ask the backend's own list.
        if await self._call_backend(lambda: self.backend.has(cid)):
            self.counts["skipped_listed"] += 1
            await self.ledger.record_pin(cid, path.stat().st_size, job_id)
            return
        if self.monthly_pins is not None:
            used = await self.ledger.pins_this_month()
            if used >= self.monthly_pins:
                raise ParkError(f"monthly pin budget of {self.monthly_pins} spent ({used} pins this month); "
                                     "raise PINNER_MONTHLY_PINS or wait for next month, then replay")
        got = await self._call_backend(
            lambda: self.backend.pin_file(path, content_type, name, keyvalues, cid), cancelled)
        self.counts["uploads"] += 1
        if got != cid:
            raise IntegrityError(f"{self.backend.name} returned CID {got} for {name}, but its bytes hash to {cid}")
        await self.ledger.record_pin(cid, path.stat().st_size, job_id)
        log.info("uploaded", cid=cid, name=name, backend=self.backend.name)
