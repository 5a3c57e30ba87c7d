"""Shared building blocks of the mintpipe services (never imports a service), in rooms, leaf first:

- config       settings from the environment (a leaf: imports only runtime.log)
- bootstrap    what settings name, built: the database and the object stores
- core/        the vocabulary, no I/O: stages, scenes, wallets, cid
- runtime/     log, metrics, lifecycle (start and drain), disk
- db/          one Database over SQLite and PostgreSQL (core), group_commit, replica, migrations/
- objects/     artifact and IPFS stores, folder or S3 (artifacts, artifacts_s3, ipfs, ipfs_s3, s3)
- limits/      rate limits in memory or on PostgreSQL (memory, postgres)
- messaging/   RabbitMQ: broker, consumer, events (EventPublisher), worker
- rpc/         gRPC: server (health, reflection), batch, coalesce
- chain, dev_keys, pin_ledger   the contract and vouchers, anvil's dev keys, the monthly pin budget
- v1/          generated protobuf and gRPC stubs
"""
