-- The submitter's W3C traceparent, when it sent one: the task's spans join the
-- submitter's trace, on whichever node runs it and after any restart.
ALTER TABLE tasks ADD COLUMN traceparent text;

-- hf_submit and hf_submit_many (0006) again, storing it.
DROP FUNCTION hf_submit_many(jsonb);
DROP FUNCTION hf_submit(text, text, text, bigint, text, text, text, bigint, bigint);

CREATE FUNCTION hf_submit(
    p_task text, p_tenant text, p_workflow text, p_version bigint, p_input text, p_key text,
    p_pending text, p_run_at bigint, p_now bigint, p_traceparent text,
    OUT code integer, OUT task tasks
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT * INTO task FROM tasks WHERE tenant = p_tenant AND idempotency_key = p_key;
        IF FOUND THEN
            code := 1;
            RETURN;
        END IF;
    END IF;
    PERFORM 1 FROM workflows WHERE name = p_workflow AND version = p_version;
    IF NOT FOUND THEN
        code := 2;
        RETURN;
    END IF;
    -- A concurrent duplicate makes this insert wait for the other transaction, then do
    -- nothing; the next statement's fresh snapshot (READ COMMITTED) then sees the
    -- existing task. The new task's journal starts with its `submitted` event, seq 1.
    INSERT INTO tasks (task_id, tenant, workflow, workflow_version, status, input,
        idempotency_key, pending_steps, next_run_at, event_seq, created_at, updated_at,
        traceparent)
    VALUES (p_task, p_tenant, p_workflow, p_version, 'queued', p_input::json, p_key,
        p_pending::jsonb, hf_ts(p_run_at), 1, hf_ts(p_now), hf_ts(p_now), p_traceparent)
    ON CONFLICT DO NOTHING
    RETURNING * INTO task;
    IF NOT FOUND THEN
        IF p_key IS NOT NULL THEN
            SELECT * INTO task FROM tasks WHERE tenant = p_tenant AND idempotency_key = p_key;
            IF FOUND THEN
                code := 1;
                RETURN;
            END IF;
        END IF;
        task := NULL;
        code := 3;
        RETURN;
    END IF;
    INSERT INTO events (task_id, seq, at, kind, data)
    VALUES (p_task, 1, hf_ts(p_now), 'submitted', '{}');
    code := 0;
END
$$;

CREATE FUNCTION hf_submit_many(p_batch jsonb) RETURNS TABLE (i integer, code integer, task tasks)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    a record;
    r record;
BEGIN
    FOR a IN SELECT * FROM jsonb_to_recordset(p_batch) AS x(n integer, task_id text,
            tenant text, workflow text, version bigint, input text, key text, pending text,
            run_at bigint, now bigint, traceparent text) ORDER BY x.n LOOP
        SELECT * INTO r FROM hf_submit(a.task_id, a.tenant, a.workflow, a.version, a.input,
            a.key, a.pending, a.run_at, a.now, a.traceparent);
        i := a.n;
        code := r.code;
        task := r.task;
        RETURN NEXT;
    END LOOP;
END
$$;
