"""gateway: validates submissions and enqueues render jobs with a broker confirm. Never renders."""
