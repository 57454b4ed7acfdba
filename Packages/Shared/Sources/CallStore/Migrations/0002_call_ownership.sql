-- One owner per call (fencing). Every claim or takeover of a call raises its owner epoch; the status events a worker
-- publishes carry the epoch it holds, and the history refuses an event whose epoch is below the call's: a worker that
-- stalled past its lease and lost the call to another cannot move it any more.
ALTER TABLE calls ADD COLUMN owner_epoch integer NOT NULL DEFAULT 0;
-- Set by the owner, conditionally on its epoch, just before it sends the originate: a call taken over while still
-- `dispatched` without it was never dialed, and its new owner dials it; with it, the call may have been dialed.
ALTER TABLE calls ADD COLUMN originate_sent_at timestamptz;

-- Each dialer worker's heartbeat (PostgreSQL's clock, so workers' clocks need not agree). The live calls of a worker
-- whose heartbeat is older than the owner timeout are taken over by a live worker of the same node.
CREATE TABLE dialer_workers (
    worker_id    text PRIMARY KEY,
    node_id      text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dialer_workers_node_idx ON dialer_workers (node_id, heartbeat_at);
