"""A local stand-in for Pinata's HTTP API (Pinata cannot be reached from development and CI machines).

It speaks the documented protocol — legacy `pinFileToIPFS` / `pinJSONToIPFS` / `pinList` /
`testAuthentication` and the v3 files API — with the CIDs IPFS computes (CIDv1, raw leaves), and it fails the
way the real service does: 401 on a bad JWT, 429 with Retry-After and X-RateLimit-* over the rate limit, and
injected 5xx or slow answers (before the request takes effect, or after it: an upload stored, its answer held
back). It counts uploads per CID so tests can prove nothing was uploaded twice, keeps the peak of requests
attempted in any rate-limit window (refused ones included) so they can prove no client overran the limit, and
logs recent requests (`GET /_emulator/requests`) so they can tell when, and for which CID, a client called.
"""
