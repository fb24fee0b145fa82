-- The few-shot example library: per tenant and library (a task type), input/output
-- pairs people wrote or corrected. A library holds one example per fingerprint (the
-- input's near-duplicate key), so a correction of an input already in it is merged
-- into that example. `revision` grows with every change of content or status (usage
-- counts excepted), so retrieval indexes catch up by reading what changed after the
-- revision they hold. Times are Unix milliseconds.

CREATE TABLE examples (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        TEXT NOT NULL,
    library       TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT NOT NULL,
    source        TEXT NOT NULL,
    author        TEXT NOT NULL,
    origin        TEXT,
    status        TEXT NOT NULL,
    merged        INTEGER NOT NULL DEFAULT 0,
    times_used    INTEGER NOT NULL DEFAULT 0,
    last_used_at  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    revision      INTEGER NOT NULL,
    UNIQUE (tenant, library, fingerprint)
);

CREATE UNIQUE INDEX examples_by_revision ON examples (revision);
CREATE INDEX examples_by_library ON examples (tenant, library, status, id);
