-- Production answers sampled by the quality loop: the request, the answer and what its
-- graders said, written once after scoring (or skipping). Kept for a retention period:
-- the quality loop deletes rows older than it, by `created_at`.

CREATE TABLE quality_samples (
    id              bigserial PRIMARY KEY,
    tenant          text NOT NULL,
    task_type       text NOT NULL,
    suite           text NOT NULL,
    request_id      text NOT NULL,
    input           text NOT NULL,
    answer          text NOT NULL,
    status          text NOT NULL,
    score           double precision,
    verdicts        text NOT NULL,
    judge_cost_usd  double precision NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE INDEX quality_samples_by_task ON quality_samples (tenant, task_type, id);
CREATE INDEX quality_samples_by_time ON quality_samples (created_at);
