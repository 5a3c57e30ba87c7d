"""pinner: pins a job's assets and its ERC-721 metadata, and announces the token URI."""
