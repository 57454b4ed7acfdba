-- Campaigns: contact lists, do-not-call lists, campaigns and their per-contact progress. Every row belongs to one
-- organization (directly or through its list or campaign).

-- A contact list is imported once from a CSV file; its contacts are then read-only. `state` says whether the import
-- finished; the counts and the per-row errors are its report.
CREATE TABLE contact_lists (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state           text NOT NULL CHECK (state IN ('importing', 'ready', 'failed')),
    rows_read       integer NOT NULL DEFAULT 0,
    contacts        integer NOT NULL DEFAULT 0,
    refused         integer NOT NULL DEFAULT 0,
    error           text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_lists_org_idx ON contact_lists (organization_id, created_at DESC, id DESC);

-- One row per accepted line; a phone appears once per list (a later duplicate line is refused and reported).
CREATE TABLE contacts (
    id         uuid PRIMARY KEY,
    list_id    uuid NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    line       integer NOT NULL,
    phone      text NOT NULL,
    time_zone  text NOT NULL,
    fields     jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (list_id, phone)
);
CREATE INDEX contacts_list_line_idx ON contacts (list_id, line);

-- The lines an import refused, with why.
CREATE TABLE contact_list_errors (
    list_id     uuid NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    line        integer NOT NULL,
    column_name text,
    message     text NOT NULL,
    value       text,
    PRIMARY KEY (list_id, line)
);

-- Do-not-call: organization-wide (campaign_id null) or for one campaign. Consulted when a contact is picked to dial.
CREATE TABLE dnc_entries (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    campaign_id     uuid,
    phone           text NOT NULL,
    reason          text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dnc_entries_org_idx ON dnc_entries (organization_id, phone) WHERE campaign_id IS NULL;
CREATE UNIQUE INDEX dnc_entries_campaign_idx ON dnc_entries (campaign_id, phone) WHERE campaign_id IS NOT NULL;

-- A campaign: what to dial (its lists), how (caller id, dial plan target, timeout), when (calling windows in each
-- contact's local time, start and end), how fast (calls per second, live calls) and how often (retry rules by
-- outcome, attempts per contact). A running campaign is owned by one scheduler at a time through its lease.
CREATE TABLE campaigns (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state                text NOT NULL CHECK (state IN ('draft', 'running', 'paused', 'completed', 'stopped')),
    caller_id_name       text,
    caller_id_number     text,
    context              text,
    extension            text,
    priority             integer,
    timeout_seconds      integer NOT NULL,
    calling_windows      jsonb NOT NULL,
    starts_at            timestamptz,
    ends_at              timestamptz,
    max_calls_per_second double precision NOT NULL CHECK (max_calls_per_second > 0),
    max_live_calls       integer NOT NULL CHECK (max_live_calls > 0),
    retry_rules          jsonb NOT NULL,
    max_attempts         integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 20),
    lease_owner          text,
    lease_until          timestamptz,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz
);
CREATE INDEX campaigns_org_idx ON campaigns (organization_id, created_at DESC, id DESC);
CREATE INDEX campaigns_running_idx ON campaigns (lease_until) WHERE state = 'running';

CREATE TABLE campaign_lists (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    list_id     uuid NOT NULL REFERENCES contact_lists (id),
    PRIMARY KEY (campaign_id, list_id)
);

-- Each contact of a started campaign (the same phone in two of its lists is dialed once): `pending` with the time it
-- is next due (in a calling window of its time zone), `dialing` while one attempt is in flight (never two), `done`
-- with its disposition.
CREATE TABLE campaign_contacts (
    campaign_id     uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id      uuid NOT NULL,
    phone           text NOT NULL,
    time_zone       text NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'dialing', 'done')),
    attempts        integer NOT NULL DEFAULT 0,
    retries         jsonb NOT NULL DEFAULT '{}'::jsonb,
    next_attempt_at timestamptz,
    call_id         uuid,
    last_outcome    text,
    disposition     text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, contact_id),
    UNIQUE (campaign_id, phone)
);
CREATE INDEX campaign_contacts_due_idx ON campaign_contacts (campaign_id, next_attempt_at) WHERE state = 'pending';
CREATE INDEX campaign_contacts_dialing_idx ON campaign_contacts (campaign_id) WHERE state = 'dialing';

-- Every attempt: its call (id derived from campaign, contact and attempt number) and how it ended.
CREATE TABLE campaign_attempts (
    campaign_id   uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id    uuid NOT NULL,
    attempt       integer NOT NULL,
    call_id       uuid NOT NULL UNIQUE,
    dispatched_at timestamptz NOT NULL,
    outcome       text,
    ended_at      timestamptz,
    PRIMARY KEY (campaign_id, contact_id, attempt)
);
