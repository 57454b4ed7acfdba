-- Call recording: whether the request (or its campaign) asked for it, so a worker that takes the call over records it
-- the same way, and one row per recorded call following the file from the Asterisk node to the recording store.
ALTER TABLE calls ADD COLUMN record boolean NOT NULL DEFAULT false;

ALTER TABLE campaigns ADD COLUMN record boolean NOT NULL DEFAULT false;

-- status: starting (the snoop channel is being set up), recording (RecordingStarted), finished (RecordingFinished:
-- the file is on the node), stored (in the recording store, removed from the node), failed (RecordingFailed, or the
-- file could not be had), deleted (erased on request or by retention; the row stays as the record of it).
-- No foreign key cascade: a call's row is never deleted while its recording may still be in the store.
CREATE TABLE call_recordings (
    call_id uuid PRIMARY KEY REFERENCES calls (id),
    organization_id uuid NOT NULL,
    node_id text NOT NULL,
    name text NOT NULL,
    format text NOT NULL,
    status text NOT NULL CHECK (status IN ('starting', 'recording', 'finished', 'stored', 'failed', 'deleted')),
    detail text,
    duration_seconds integer,
    size_bytes bigint,
    sha256 text,
    storage_key text,
    requested_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    stored_at timestamptz,
    deleted_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What a node's worker must still bring home after a restart or a takeover.
CREATE INDEX call_recordings_unsettled ON call_recordings (node_id) WHERE status IN ('starting', 'recording', 'finished');
-- What retention removes.
CREATE INDEX call_recordings_stored ON call_recordings (stored_at) WHERE status = 'stored';
