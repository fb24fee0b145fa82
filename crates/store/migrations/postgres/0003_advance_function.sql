-- One advance in one round trip: the engine commits one advance per finished step, from
-- many tasks at once, and at five round trips each (BEGIN, task, step, events, COMMIT)
-- the network, not the disk, set the pace. hf_advance runs the same statements as
-- before, in order, inside the caller's single-statement transaction.
--
-- Returns 0 when done; 1 stale task lease; 4 no such task; 2 no such lock; 3 stale lock
-- token (nothing written in those cases). A step already committed raises SQLSTATE
-- HF409, which undoes the whole statement.
--
-- The function is VOLATILE, so under READ COMMITTED each statement in it takes a fresh
-- snapshot: the wake check at the end runs after the task UPDATE has locked the row,
-- and sees any job or escalation finished by a transaction that committed before it.
-- complete_job and resolve_escalation lock the task row before their own checks, so
-- whichever of the two comes second sees the other's effect.
CREATE FUNCTION hf_advance(
    p_task text, p_token bigint, p_now bigint, p_status text, p_next_run bigint,
    p_pending text, p_output text, p_last_error text, p_retried bigint,
    p_cost double precision, p_completed text, p_checkpoint text,
    p_step_status text, p_step_attempt bigint, p_step_output text, p_step_error text,
    p_step_next bigint,
    p_kinds text[], p_data text[],
    p_job_ids text[], p_job_queues text[], p_job_steps text[], p_job_payloads text[],
    p_esc_id text, p_esc_step text, p_esc_reason text, p_esc_payload text,
    p_fence_lock text, p_fence_token bigint, p_waits boolean
) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq bigint;
    v_n bigint := coalesce(cardinality(p_kinds), 0);
    v_lock_token bigint;
    v_live boolean;
BEGIN
    IF p_fence_lock IS NOT NULL THEN
        -- FOR SHARE: no new holder commits a larger token until this write commits.
        SELECT token, holder IS NOT NULL AND expires_at > hf_ts(p_now)
            INTO v_lock_token, v_live
            FROM locks WHERE name = p_fence_lock FOR SHARE;
        IF NOT FOUND THEN
            RETURN 2;
        END IF;
        IF v_lock_token <> p_fence_token OR NOT v_live THEN
            RETURN 3;
        END IF;
    END IF;

    UPDATE tasks SET
        status = p_status,
        lease_owner = CASE WHEN p_status = 'running' THEN lease_owner END,
        lease_expires_at = CASE WHEN p_status = 'running' THEN lease_expires_at END,
        next_run_at = CASE WHEN p_status = 'running' THEN next_run_at ELSE hf_ts(p_next_run) END,
        pending_steps = COALESCE(p_pending::jsonb, pending_steps),
        output = COALESCE(p_output::json, output),
        last_error = COALESCE(p_last_error, last_error),
        retry_count = retry_count + p_retried,
        cost_usd = cost_usd + p_cost,
        -- A step reaches succeeded or skipped once: the step upsert below refuses a
        -- second time and undoes this update with it.
        completed_steps = CASE WHEN p_completed IS NULL THEN completed_steps
            ELSE completed_steps || jsonb_build_array(p_completed) END,
        checkpoint_step = COALESCE(p_checkpoint, checkpoint_step),
        checkpoint_at = CASE WHEN p_checkpoint IS NULL THEN checkpoint_at ELSE hf_ts(p_now) END,
        event_seq = event_seq + v_n,
        updated_at = hf_ts(p_now)
    WHERE task_id = p_task AND status = 'running' AND lease_token = p_token
        AND lease_expires_at > hf_ts(p_now)
    RETURNING event_seq INTO v_seq;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM tasks WHERE task_id = p_task) THEN
            RETURN 1;
        END IF;
        RETURN 4;
    END IF;

    IF p_step_status IS NOT NULL THEN
        -- A committed step (succeeded, skipped) may only become compensated; a
        -- compensated one never changes (invariant 1).
        INSERT INTO steps (task_id, name, status, attempt, output, error, next_attempt_at, updated_at)
        VALUES (p_task, p_checkpoint, p_step_status, p_step_attempt, p_step_output::json,
                p_step_error, hf_ts(p_step_next), hf_ts(p_now))
        ON CONFLICT (task_id, name) DO UPDATE SET status = excluded.status,
            attempt = excluded.attempt, output = COALESCE(excluded.output, steps.output),
            error = excluded.error, next_attempt_at = excluded.next_attempt_at,
            updated_at = excluded.updated_at
        WHERE steps.status NOT IN ('skipped', 'compensated')
            AND (steps.status <> 'succeeded' OR excluded.status = 'compensated');
        IF NOT FOUND THEN
            RAISE EXCEPTION 'step %/% already committed', p_task, p_checkpoint
                USING ERRCODE = 'HF409';
        END IF;
    END IF;

    IF v_n > 0 THEN
        INSERT INTO events (task_id, seq, at, kind, data)
        SELECT p_task, v_seq - v_n + e.n, hf_ts(p_now), e.kind, e.data::json
        FROM unnest(p_kinds, p_data) WITH ORDINALITY AS e(kind, data, n);
    END IF;

    IF coalesce(cardinality(p_job_ids), 0) > 0 THEN
        INSERT INTO jobs (job_id, task_id, step, queue, payload, status, created_at, updated_at)
        SELECT j.id, p_task, j.step, j.queue, j.payload::json, 'pending', hf_ts(p_now), hf_ts(p_now)
        FROM unnest(p_job_ids, p_job_queues, p_job_steps, p_job_payloads) AS j(id, queue, step, payload);
    END IF;

    IF p_esc_id IS NOT NULL THEN
        INSERT INTO escalations (escalation_id, task_id, step, reason, payload, status, created_at)
        VALUES (p_esc_id, p_task, p_esc_step, p_esc_reason, p_esc_payload::json, 'open', hf_ts(p_now));
    END IF;

    IF p_waits THEN
        -- See QUEUE_IF_WOKEN in the SQLite backend: a wake that came while the task
        -- was running changed nothing, so waiting now would be for ever.
        UPDATE tasks SET status = 'queued', next_run_at = hf_ts(p_now)
        WHERE task_id = p_task AND status = 'waiting' AND EXISTS (
            SELECT 1 FROM steps s WHERE s.task_id = p_task AND s.status = 'waiting'
            AND (EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = p_task AND j.step = s.name
                    AND j.status IN ('succeeded', 'failed'))
                OR EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = p_task
                    AND e.step = s.name AND e.status IN ('approved', 'edited', 'rejected')))
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = p_task AND j.step = s.name
                AND j.status IN ('pending', 'claimed'))
            AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = p_task
                AND e.step = s.name AND e.status = 'open'));
    END IF;
    RETURN 0;
END
$$;
