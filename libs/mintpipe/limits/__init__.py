"""Rate limits: per-key token buckets in this process's memory (memory, was ratelimit: also the RateLimiter
contract and rate_limiter, which picks the engine) or shared by every replica on PostgreSQL (postgres, was
pg_ratelimit)."""
