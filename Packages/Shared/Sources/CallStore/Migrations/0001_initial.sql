-- Users of the API. Passwords are bcrypt hashes; a disabled user's tokens stop working at once.
CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per call: its request and its current state. Columns describing the request are null when the row was
-- first created from a status event that overtook its originate command (the command fills them in later).
CREATE TABLE calls (
    id                uuid PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('queued', 'dispatched', 'initiated', 'ringing', 'answered',
                          'completed', 'busy', 'no_answer', 'rejected', 'failed', 'canceled', 'expired')),
    seq               integer NOT NULL DEFAULT 0,
    to_number         text,
    caller_id_name    text,
    caller_id_number  text,
    context           text,
    extension         text,
    priority          integer,
    timeout_seconds   integer,
    variables         jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    requested_by      text,
    request_id        text,
    node_id           text,
    worker_id         text,
    channel_id        text,
    hangup_cause      integer,
    hangup_cause_text text,
    failure_reason    text,
    detail            text,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz,
    dispatched_at     timestamptz,
    answered_at       timestamptz,
    ended_at          timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Keyset pagination walks (created_at, id) backwards; the filters use the same order.
CREATE INDEX calls_created_idx ON calls (created_at DESC, id DESC);
CREATE INDEX calls_status_created_idx ON calls (status, created_at DESC, id DESC);
CREATE INDEX calls_to_created_idx ON calls (to_number, created_at DESC, id DESC);
-- Live calls of a node, for a worker's adoption and reconciliation after a restart.
CREATE INDEX calls_live_by_node_idx ON calls (node_id, worker_id)
    WHERE status IN ('dispatched', 'initiated', 'ringing', 'answered');

-- The status timeline of every call: one row per applied status event.
CREATE TABLE call_events (
    call_id           uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq               integer NOT NULL,
    event_id          uuid NOT NULL,
    status            text NOT NULL,
    previous_status   text,
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    node_id           text,
    worker_id         text,
    hangup_cause      integer,
    hangup_cause_text text,
    failure_reason    text,
    detail            text,
    PRIMARY KEY (call_id, seq)
);

-- Idempotency keys: a replay of a keyed request returns the original call; another body under the same key is
-- refused. The call id is derived from (user, key), so this table is a convenience, not the only guard.
CREATE TABLE idempotency_keys (
    user_id     uuid NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    call_id     uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
