"""Jobs and what belongs to each: the job record, its request log, Idempotency-Keys,
long-poll holds, and the clock they all read."""
