"""The operators' side: the dashboard at /admin and its JSON API under /v1/admin. Mounted by status.app.

- views (was admin_api): the JSON API, every screen's twin (overview, job search and detail, dead letters, audit)
- actions (was admin): the bearer-token routes that act (dead letters listed and replayed, cancel)
- mint (was admin_mint): an operator's re-verification of a job's mint (through status.minting)
- overview: the broker's queues and the job store's numbers, measured where each is known
- auth (was ops_auth): who may see and do what (admin and read-only tokens, sessions, CSRF)
- pages (was admin_pages): the dashboard's built files and the login form

These import status.jobs, status.errors, status.clients and status.minting, never status.bridge.
"""
