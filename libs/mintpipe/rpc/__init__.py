"""gRPC plumbing every service shares: the server with health and reflection (server, was grpc_runtime),
calls batched into one RPC (batch, was grpc_batch) and identical concurrent calls coalesced (coalesce)."""
