-- The few-shot example library: per tenant and library (a task type), input/output
-- pairs people wrote or corrected. A library holds one example per fingerprint (the
-- input's near-duplicate key), so a correction of an input already in it is merged
-- into that example. `revision` grows with every change of content or status (usage
-- counts excepted); changes take a transaction lock first, so revisions commit in
-- order and a retrieval index that reads what changed after its revision misses none.

CREATE TABLE examples (
    id            bigserial PRIMARY KEY,
    tenant        text NOT NULL,
    library       text NOT NULL,
    fingerprint   text NOT NULL,
    input         text NOT NULL,
    output        text NOT NULL,
    source        text NOT NULL,
    author        text NOT NULL,
    origin        text,
    status        text NOT NULL,
    merged        bigint NOT NULL DEFAULT 0,
    times_used    bigint NOT NULL DEFAULT 0,
    last_used_at  timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    revision      bigint NOT NULL,
    UNIQUE (tenant, library, fingerprint)
);

CREATE UNIQUE INDEX examples_by_revision ON examples (revision);
CREATE INDEX examples_by_library ON examples (tenant, library, status, id);
