-- Organizations: every user, API key, call and audit record belongs to exactly one. What existed before goes to the
-- `default` organization, whose id is fixed (Organization.defaultID) so commands published by an older gateway, which
-- carry no organization, land there too.
-- Limits (null: none) hold across every gateway and worker: a claim of a call is refused while the organization has
-- max_live_calls calls being dialed or up, and paced by a token bucket (dial_tokens, refilled at max_calls_per_second
-- by PostgreSQL's clock, at most one token of burst). Claims of a limited organization serialize on its row.
CREATE TABLE organizations (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    created_at           timestamptz NOT NULL DEFAULT now(),
    max_live_calls       integer CHECK (max_live_calls > 0),
    max_calls_per_second double precision CHECK (max_calls_per_second > 0 AND max_calls_per_second <= 10000),
    dial_tokens          double precision NOT NULL DEFAULT 1,
    dial_tokens_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO organizations (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'default');

-- The defaults keep the previous release working on this schema during a rolling upgrade: what it inserts (users,
-- calls) lands in the default organization. This release always names the organization.
ALTER TABLE users ADD COLUMN organization_id uuid NOT NULL DEFAULT '00000000-0000-4000-8000-000000000001'
    REFERENCES organizations (id);
-- A platform operator (set from the CLI only) may also create organizations; their other rights are their role's,
-- in their own organization.
ALTER TABLE users ADD COLUMN platform_operator boolean NOT NULL DEFAULT false;
CREATE INDEX users_org_idx ON users (organization_id, username);

-- Null only while a row created from a status event without an organization (from an older worker) waits for its
-- command: such a row is in no organization's history yet, so no one sees it.
ALTER TABLE calls ADD COLUMN organization_id uuid DEFAULT '00000000-0000-4000-8000-000000000001';
DROP INDEX calls_created_idx;
DROP INDEX calls_status_created_idx;
DROP INDEX calls_to_created_idx;
CREATE INDEX calls_org_created_idx ON calls (organization_id, created_at DESC, id DESC);
CREATE INDEX calls_org_status_created_idx ON calls (organization_id, status, created_at DESC, id DESC);
CREATE INDEX calls_org_to_created_idx ON calls (organization_id, to_number, created_at DESC, id DESC);
-- The live calls of an organization, counted by every claim of a limited one.
CREATE INDEX calls_org_live_idx ON calls (organization_id)
    WHERE status IN ('dispatched', 'initiated', 'ringing', 'answered');

-- API keys of services: `dk_<lookup_id>_<secret>`. Only a SHA-256 of the whole key is kept (the secret is 256 random
-- bits, so a slow hash adds nothing); the lookup id finds the row without scanning.
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    lookup_id       text NOT NULL UNIQUE,
    key_hash        bytea NOT NULL,
    scopes          text[] NOT NULL,
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz
);
CREATE INDEX api_keys_org_idx ON api_keys (organization_id, created_at DESC);

-- Security-relevant actions, newest first per organization; append-only for the gateway.
CREATE TABLE audit_events (
    id              bigserial PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    action          text NOT NULL,
    target_type     text NOT NULL,
    target_id       text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id      text
);
CREATE INDEX audit_events_org_idx ON audit_events (organization_id, id DESC);
