"""status: the job store, its gRPC read API, and the HTTP bridge for the front end."""
