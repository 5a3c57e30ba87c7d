"""A local stand-in for Pinata's HTTP API (Pinata cannot be reached from development and CI machines).

It speaks the documented protocol — legacy `pinFileToIPFS` / `pinJSONToIPFS` / `pinList` /
`testAuthentication` and the v3 files API — with the CIDs IPFS computes (CIDv1, raw leaves), and it fails the
way the real service does: 401 on a bad JWT, 429 with Retry-After and X-RateLimit-* over the rate limit, and
injected 5xx or slow answers. It counts uploads per CID so tests can prove nothing was uploaded twice.
"""
