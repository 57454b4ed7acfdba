-- Status webhooks: where an organization's call events are pushed, the signing secrets, and one durable delivery
-- per (endpoint, event) with its attempts. The webhook dispatcher writes deliveries from `calls.status.v1` and
-- works through them; the gateway administers endpoints and shows the log.

-- A call's own status callback (Twilio's StatusCallback): the URL and the statuses it wants (empty: the final ones).
ALTER TABLE calls ADD COLUMN status_callback text;
ALTER TABLE calls ADD COLUMN status_callback_events text[] NOT NULL DEFAULT '{}';

-- Endpoints. `subscription` endpoints are managed through the API; a `call_callback` endpoint is made by the
-- dispatcher for each distinct status callback URL of an organization, so that per-call callbacks share the
-- per-endpoint concurrency limit, circuit breaker and delivery log; it is signed with the organization's secret.
CREATE TABLE webhook_endpoints (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id),
    kind                 text NOT NULL CHECK (kind IN ('subscription', 'call_callback')),
    url                  text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description          text NOT NULL DEFAULT '' CHECK (length(description) <= 256),
    -- Event types delivered (`call.answered`, ...); empty: every type.
    event_types          text[] NOT NULL DEFAULT '{}',
    enabled              boolean NOT NULL DEFAULT true,
    disabled_reason      text,
    -- The circuit breaker: consecutive failed attempts, and until when no attempt is made.
    consecutive_failures integer NOT NULL DEFAULT 0,
    circuit_open_until   timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (organization_id, created_at DESC);
CREATE UNIQUE INDEX webhook_endpoints_callback_url_idx ON webhook_endpoints (organization_id, url)
    WHERE kind = 'call_callback';

-- Signing secrets (`whsec_<base64>`) of an endpoint, or of an organization's status callbacks (owner = its id).
-- A rotation adds a secret and gives the others an expiry: until then a delivery carries a signature for each.
CREATE TABLE webhook_secrets (
    id         bigserial PRIMARY KEY,
    owner_id   uuid NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX webhook_secrets_owner_idx ON webhook_secrets (owner_id, id DESC);

-- One message to one endpoint. `id` is the `webhook-id` header, stable across attempts; `payload` is the exact body
-- signed and sent each time. `step` is the position in the retry schedule (a manual redelivery starts it again);
-- `lease_until` marks an attempt in flight, so a dispatcher that dies mid-attempt hands it on when it passes.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    call_id         uuid,
    event_id        uuid,
    event_type      text NOT NULL,
    payload         text NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'canceled')),
    attempts        integer NOT NULL DEFAULT 0,
    step            integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    leased_by       text,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- A status event fans out to an endpoint once, however often the dispatcher reads it.
CREATE UNIQUE INDEX webhook_deliveries_event_idx ON webhook_deliveries (endpoint_id, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
-- A claim takes each endpoint's oldest due deliveries up to its room.
CREATE INDEX webhook_deliveries_endpoint_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_call_idx ON webhook_deliveries (call_id, created_at DESC) WHERE call_id IS NOT NULL;

-- Every attempt: when, how long, what came back.
CREATE TABLE webhook_attempts (
    id              bigserial PRIMARY KEY,
    delivery_id     uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer NOT NULL,
    response_status integer,
    error           text,
    dispatcher_id   text NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
