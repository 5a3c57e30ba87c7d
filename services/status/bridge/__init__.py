"""The front end's HTTP routes (SPEC.md): what the mint page and any client call. Mounted by status.app.

- jobs (was http_api's routes): submit, read, list and watch (SSE) jobs, the scenes, /ipfs/{cid}
- submit (was submit_route): what a submission does (Submitter) and its lean way in (SubmitFastPath)
- preview: POST /v1/preview, a still drawn by a renderer replica
- pages: the mint page's built files at / and /jobs/{id}
- ipfs (was ipfs_serve): /ipfs/{cid} streamed from the S3 object store, with byte ranges
- chain (was chain_api): GET /v1/chain and POST /v1/jobs/{id}/mint (the checks are status.minting's)

These import status.jobs, status.errors, status.clients and status.minting, never status.ops.
"""
