-- Many advances in one transaction, one round trip and one commit. Two costs capped
-- durable steps: a commit per step (a server commits only so many a second, however
-- little each holds), and the server's CPU per step: hf_advance runs five statements
-- per advance, each with its own executor start and end, and that overhead, not the
-- rows written, was most of an advance's cost. hf_advance_many runs the same writes
-- as set-based statements over the whole batch, so its cost per advance is mostly the
-- rows themselves.
--
-- p_batch is a JSON array of objects with the fields of hf_advance_item (hf_advance's
-- parameters without their p_ prefix, fences excepted), where i numbers them 1..n.
-- A batch holds at most one advance per task (each is checked against its task as it
-- was before the batch) and no fenced advance (its lock would be another order of
-- locking); the caller runs those alone, with hf_advance.
--
-- Returns one code per advance, in order: hf_advance's own (0 done; 1 stale task
-- lease; 4 no such task; nothing written for those) or 5, the step is already
-- committed (hf_advance raises HF409 for it instead; nothing written either). A
-- refused advance changes nothing and does not disturb the others. Any error (a
-- duplicate job id, say) aborts the whole statement, so nothing of the batch is
-- committed and the caller may run each advance alone to give each its own answer.
CREATE TYPE hf_advance_item AS (
    i integer, task text, token bigint, now bigint, status text, next_run bigint,
    pending text, output text, last_error text, retried bigint, cost double precision,
    completed text, checkpoint text,
    step_status text, step_attempt bigint, step_output text, step_error text,
    step_next bigint,
    kinds text[], data text[],
    job_ids text[], job_queues text[], job_steps text[], job_payloads text[],
    esc_id text, esc_step text, esc_reason text, esc_payload text, waits boolean
);

CREATE FUNCTION hf_advance_many(p_batch jsonb) RETURNS integer[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_items hf_advance_item[];
    v_ok hf_advance_item[];
    v_codes integer[];
    v_steps bigint;
BEGIN
    SELECT array_agg(x ORDER BY x.i) INTO v_items
    FROM jsonb_populate_recordset(NULL::hf_advance_item, p_batch) x;

    -- Locked in task order, so that two batches never wait on each other. Each
    -- statement below takes a fresh snapshot (READ COMMITTED, VOLATILE function), so
    -- it sees every write committed to these tasks before their locks were granted.
    PERFORM 1 FROM tasks WHERE task_id IN (SELECT b.task FROM unnest(v_items) b)
        ORDER BY task_id FOR UPDATE;

    -- The checks of hf_advance, in its order: the lease, then a committed step (steps
    -- are written only under their task's lock, so this check cannot go stale).
    SELECT array_agg(CASE
            WHEN t.task_id IS NULL THEN 4
            WHEN NOT (t.status = 'running' AND t.lease_token = b.token
                AND t.lease_expires_at > hf_ts(b.now)) THEN 1
            WHEN b.step_status IS NOT NULL AND (s.status IN ('skipped', 'compensated')
                OR (s.status = 'succeeded' AND b.step_status <> 'compensated')) THEN 5
            ELSE 0 END ORDER BY b.i)
        INTO v_codes
    FROM unnest(v_items) b
    LEFT JOIN tasks t ON t.task_id = b.task
    LEFT JOIN steps s ON s.task_id = b.task AND s.name = b.checkpoint;

    SELECT array_agg(b ORDER BY b.i) INTO v_ok
    FROM unnest(v_items) b WHERE v_codes[b.i] = 0;
    IF v_ok IS NULL THEN
        RETURN v_codes;
    END IF;

    -- The task update of hf_advance, with its journal numbered from the new event_seq.
    WITH u AS (
        UPDATE tasks t SET
            status = b.status,
            lease_owner = CASE WHEN b.status = 'running' THEN t.lease_owner END,
            lease_expires_at = CASE WHEN b.status = 'running' THEN t.lease_expires_at END,
            next_run_at = CASE WHEN b.status = 'running' THEN t.next_run_at
                ELSE hf_ts(b.next_run) END,
            pending_steps = COALESCE(b.pending::jsonb, t.pending_steps),
            output = COALESCE(b.output::json, t.output),
            last_error = COALESCE(b.last_error, t.last_error),
            retry_count = t.retry_count + b.retried,
            cost_usd = t.cost_usd + b.cost,
            completed_steps = CASE WHEN b.completed IS NULL THEN t.completed_steps
                ELSE t.completed_steps || jsonb_build_array(b.completed) END,
            checkpoint_step = COALESCE(b.checkpoint, t.checkpoint_step),
            checkpoint_at = CASE WHEN b.checkpoint IS NULL THEN t.checkpoint_at
                ELSE hf_ts(b.now) END,
            event_seq = t.event_seq + coalesce(cardinality(b.kinds), 0),
            updated_at = hf_ts(b.now)
        FROM unnest(v_ok) b
        WHERE t.task_id = b.task
        RETURNING t.task_id, t.event_seq
    )
    INSERT INTO events (task_id, seq, at, kind, data)
    SELECT b.task, u.event_seq - cardinality(b.kinds) + e.n, hf_ts(b.now), e.kind,
        e.data::json
    FROM u JOIN unnest(v_ok) b ON b.task = u.task_id
    CROSS JOIN LATERAL unnest(b.kinds, b.data) WITH ORDINALITY AS e(kind, data, n);

    INSERT INTO steps (task_id, name, status, attempt, output, error, next_attempt_at, updated_at)
    SELECT b.task, b.checkpoint, b.step_status, b.step_attempt, b.step_output::json,
        b.step_error, hf_ts(b.step_next), hf_ts(b.now)
    FROM unnest(v_ok) b WHERE b.step_status IS NOT NULL
    ON CONFLICT (task_id, name) DO UPDATE SET status = excluded.status,
        attempt = excluded.attempt, output = COALESCE(excluded.output, steps.output),
        error = excluded.error, next_attempt_at = excluded.next_attempt_at,
        updated_at = excluded.updated_at
    WHERE steps.status NOT IN ('skipped', 'compensated')
        AND (steps.status <> 'succeeded' OR excluded.status = 'compensated');
    GET DIAGNOSTICS v_steps = ROW_COUNT;
    IF v_steps <> (SELECT count(*) FROM unnest(v_ok) b WHERE b.step_status IS NOT NULL) THEN
        -- Cannot happen while steps are written only under their task's lock; if it
        -- did, nothing of the batch commits and each advance runs alone.
        RAISE EXCEPTION 'hf_advance_many: a step changed under its task''s lock';
    END IF;

    INSERT INTO jobs (job_id, task_id, step, queue, payload, status, created_at, updated_at)
    SELECT j.id, b.task, j.step, j.queue, j.payload::json, 'pending', hf_ts(b.now),
        hf_ts(b.now)
    FROM unnest(v_ok) b
    CROSS JOIN LATERAL unnest(b.job_ids, b.job_queues, b.job_steps, b.job_payloads)
        AS j(id, queue, step, payload);

    INSERT INTO escalations (escalation_id, task_id, step, reason, payload, status, created_at)
    SELECT b.esc_id, b.task, b.esc_step, b.esc_reason, b.esc_payload::json, 'open',
        hf_ts(b.now)
    FROM unnest(v_ok) b WHERE b.esc_id IS NOT NULL;

    -- The wake check of hf_advance (see there and QUEUE_IF_WOKEN in the SQLite
    -- backend), for every task of the batch that now waits.
    UPDATE tasks t SET status = 'queued', next_run_at = hf_ts(b.now)
    FROM unnest(v_ok) b
    WHERE b.waits AND t.task_id = b.task AND t.status = 'waiting' AND EXISTS (
        SELECT 1 FROM steps s WHERE s.task_id = b.task AND s.status = 'waiting'
        AND (EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = b.task AND j.step = s.name
                AND j.status IN ('succeeded', 'failed'))
            OR EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = b.task
                AND e.step = s.name AND e.status IN ('approved', 'edited', 'rejected')))
        AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = b.task AND j.step = s.name
            AND j.status IN ('pending', 'claimed'))
        AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = b.task
            AND e.step = s.name AND e.status = 'open'));
    RETURN v_codes;
END
$$;
