-- Embedding vectors of few-shot examples, one per example and embedding model (the
-- embedding route's name), kept so that a restarted node does not embed its libraries
-- again. `vector` holds little-endian 32-bit floats.

CREATE TABLE example_vectors (
    example_id  BIGINT NOT NULL REFERENCES examples (id),
    tenant      TEXT NOT NULL,
    model       TEXT NOT NULL,
    vector      BYTEA NOT NULL,
    PRIMARY KEY (example_id, model)
);
