-- Marketing automation (issue 15): versioned workflow definitions, one durable execution per
-- customer and workflow version, a due table of timers claimed with FOR UPDATE SKIP LOCKED, an
-- action journal keyed by a deterministic idempotency key, the step log the statistics read, and
-- the split assignments the experiments feature reads. Safe to re-run.

CREATE TABLE IF NOT EXISTS automation_workflows (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status          text NOT NULL DEFAULT 'draft'
                        CHECK (status IN ('draft', 'active', 'paused', 'archived')),
    current_version integer NOT NULL DEFAULT 1,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_fired_at   timestamptz  -- schedule and date triggers: the last time they fired
);
CREATE UNIQUE INDEX IF NOT EXISTS automation_workflows_name ON automation_workflows (lower(name))
    WHERE status <> 'archived';

-- Every published version of a definition; executions point at the version they run.
CREATE TABLE IF NOT EXISTS automation_versions (
    workflow_id  bigint NOT NULL REFERENCES automation_workflows (id),
    version      integer NOT NULL CHECK (version >= 1),
    definition   jsonb NOT NULL,
    published_by text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE IF NOT EXISTS automation_executions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id  bigint NOT NULL REFERENCES automation_workflows (id),
    version      integer NOT NULL,
    profile_id   bigint NOT NULL REFERENCES crm_profiles (id),
    status       text NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'converted',
                     'exited', 'failed', 'holdout')),
    node_id      text NOT NULL,
    visit        integer NOT NULL DEFAULT 1,     -- how many times this execution entered node_id
    visits       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- node id -> entries so far
    wait_since   timestamptz,                    -- set while waiting at node_id
    wait_until   timestamptz,
    trigger      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- why the customer entered
    enrolled_at  timestamptz NOT NULL,
    finished_at  timestamptz,
    exit_reason  text,
    converted_at timestamptz,
    updated_at   timestamptz NOT NULL,
    FOREIGN KEY (workflow_id, version) REFERENCES automation_versions (workflow_id, version)
);
-- One live execution per customer and workflow (re-entry starts a new one after it ended).
CREATE UNIQUE INDEX IF NOT EXISTS automation_executions_live
    ON automation_executions (workflow_id, profile_id)
    WHERE status IN ('running', 'waiting', 'holdout');
CREATE INDEX IF NOT EXISTS automation_executions_profile
    ON automation_executions (profile_id, workflow_id, enrolled_at);
CREATE INDEX IF NOT EXISTS automation_executions_waiting
    ON automation_executions (profile_id) WHERE status = 'waiting';

-- Timers and runnable executions: a worker claims rows due now with FOR UPDATE SKIP LOCKED and
-- a lease; a row whose lease ran out (its worker died) is claimed again.
CREATE TABLE IF NOT EXISTS automation_due (
    execution_id bigint PRIMARY KEY REFERENCES automation_executions (id),
    due_at       timestamptz NOT NULL,
    lease_until  timestamptz
);
CREATE INDEX IF NOT EXISTS automation_due_at ON automation_due (due_at);

-- One row per action taken: the key is execution id + node id + entry count, written in the
-- transaction of the action's effect, so a retried step finds it and does not act again.
CREATE TABLE IF NOT EXISTS automation_actions (
    idem_key     text PRIMARY KEY,
    execution_id bigint NOT NULL REFERENCES automation_executions (id),
    node_id      text NOT NULL,
    kind         text NOT NULL,
    ok           boolean NOT NULL,
    outcome      jsonb NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS automation_actions_execution ON automation_actions (execution_id);

-- What happened at each node (append-only): the statistics and "why is this customer here".
CREATE TABLE IF NOT EXISTS automation_step_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id bigint NOT NULL REFERENCES automation_executions (id),
    workflow_id  bigint NOT NULL,
    version      integer NOT NULL,
    node_id      text NOT NULL,
    event        text NOT NULL CHECK (event IN ('entered', 'completed', 'failed', 'waiting',
                     'exited', 'converted', 'migrated')),
    branch       text,
    detail       text NOT NULL DEFAULT '',
    at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS automation_step_log_execution ON automation_step_log (execution_id, id);
CREATE INDEX IF NOT EXISTS automation_step_log_workflow ON automation_step_log (workflow_id, node_id);

-- Random and A/B split assignments, read by the experiments feature.
CREATE TABLE IF NOT EXISTS automation_split_assignments (
    execution_id bigint NOT NULL REFERENCES automation_executions (id),
    workflow_id  bigint NOT NULL,
    version      integer NOT NULL,
    node_id      text NOT NULL,
    profile_id   bigint NOT NULL,
    branch       text NOT NULL,
    assigned_at  timestamptz NOT NULL,
    PRIMARY KEY (execution_id, node_id)
);
CREATE INDEX IF NOT EXISTS automation_split_assignments_node
    ON automation_split_assignments (workflow_id, node_id, branch);

-- Tasks and alerts for store staff created by workflows.
CREATE TABLE IF NOT EXISTS automation_staff_tasks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idem_key     text NOT NULL UNIQUE,
    profile_id   bigint NOT NULL,
    store_id     text,
    kind         text NOT NULL CHECK (kind IN ('task', 'alert')),
    title        text NOT NULL,
    created_at   timestamptz NOT NULL,
    done_at      timestamptz
);
