-- Web Push subscriptions (issue 14, channel adapters): one row per browser push endpoint, owned by
-- the customer who subscribed on that browser last. The endpoint is the key: a browser that
-- subscribes again replaces its keys; 404/410 from the push service means the row is deleted.
CREATE TABLE IF NOT EXISTS crm_msg_push_subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    profile_id  bigint NOT NULL REFERENCES crm_profiles (id),
    endpoint    text NOT NULL UNIQUE CHECK (length(endpoint) <= 2048),
    p256dh      text NOT NULL,
    auth        text NOT NULL,
    user_agent  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crm_msg_push_subscriptions_profile
    ON crm_msg_push_subscriptions (profile_id, id);
