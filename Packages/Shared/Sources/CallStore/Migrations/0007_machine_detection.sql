-- Answering machine detection: what the request or campaign asked for (a worker that takes over a call before it
-- was dialed dials it with the same detection) and who answered, as the detection decided.
ALTER TABLE calls
    ADD COLUMN machine_detection jsonb,
    ADD COLUMN answered_by text CHECK (answered_by IN ('human', 'machine', 'unknown'));

ALTER TABLE campaigns ADD COLUMN machine_detection jsonb;
