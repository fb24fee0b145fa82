-- Health shared by nodes (`[cluster] share_health`): one row per shared rate-limit
-- bucket, refilled on the callers' clocks, and the notes breakers publish when they open
-- or are reset, kept for an hour. Times are Unix milliseconds.

CREATE TABLE rate_buckets (
    name        TEXT PRIMARY KEY,
    available   REAL NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE breaker_notes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target      TEXT NOT NULL,
    node        TEXT NOT NULL,
    open_until  INTEGER,
    at          INTEGER NOT NULL
);

CREATE INDEX breaker_notes_by_time ON breaker_notes (at);
