"""Status's background work: what consumes the broker and what sweeps on a timer.

- consumer: the events consumer, every JobEvent into the job store (EventApplier, events_consumer)
- dead_letters: jobs the broker gave up on, failed in the store with a reason (DeadLetterWatch)
- sweeper: orphaned reservations re-published or dropped; old jobs and keys pruned (leader only)
- artifact_sweeper: a job's files removed from the artifact store once nobody can need them (leader only)

Delivery: at-least-once, effect exactly-once. A JobEvent is acked only after it is committed to the job store;
the broker may deliver it again (a redelivery after a crash, a duplicate, a late one), and applying it again
changes nothing (status.jobs.transitions). Handlers here must stay idempotent.
"""
