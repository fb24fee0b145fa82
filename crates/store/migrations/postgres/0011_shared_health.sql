-- Health shared by nodes (`[cluster] share_health`): one row per shared rate-limit
-- bucket, refilled on the callers' clocks, and the notes breakers publish when they open
-- or are reset, kept for an hour. Times are Unix milliseconds, as the callers give them.

CREATE TABLE rate_buckets (
    name        text PRIMARY KEY,
    available   double precision NOT NULL,
    updated_at  bigint NOT NULL
);

CREATE TABLE breaker_notes (
    id          bigserial PRIMARY KEY,
    target      text NOT NULL,
    node        text NOT NULL,
    open_until  bigint,
    at          bigint NOT NULL
);

CREATE INDEX breaker_notes_by_time ON breaker_notes (at);
