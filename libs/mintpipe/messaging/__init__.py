"""RabbitMQ, the way every service uses it: the topology and a confirmed publish (broker), a queue consumer with
retry tiers and dead letters (consumer), the progress events every stage publishes (events) and a stage replica's
whole life around one consumer (worker).

Delivery is at-least-once: a message is acked only after its handler returned, so a handler may see the same
message again (a redelivery after a crash, a retry) and must be idempotent."""
