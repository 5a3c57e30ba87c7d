"""The job store and what changes it: status's domain, with no HTTP, gRPC server or broker consumer in it.

- records: a stored job and its two faces (protobuf Job, JSON document)
- transitions: how an event changes a job: stages only move forward, applying is idempotent and order-proof
- store: JobStore, the durable jobs and idempotency keys (SQLite or PostgreSQL)
- history (was ops_store): stage changes, retries, dead letters and the admin audit, beside `jobs`
- service: apply_and_announce and fail_job, the one way a job changes (store, history, then watchers)
- bus: in-process fan-out of job changes to watchers (SSE, gRPC Watch)
- mints: status's record of the chain, from the minter's events (mints, relay outcomes)
- claims: claim tokens, proof of being the one who submitted a job
- view: JobView, a job's JSON and protobuf with its mint fields

Guarantee: an event applied twice, or after a later one, changes nothing (transitions); the consumers in
status.workers rely on it to ack after commit.
"""
