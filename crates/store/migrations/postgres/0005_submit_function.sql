-- A submission in one round trip: submit_task took five or more (BEGIN, the key
-- lookup, the workflow check, the insert, the journal, the read back, COMMIT), which
-- made submissions, not steps, the bottleneck of the engine on PostgreSQL. hf_submit
-- runs the same checks in the same order, inside the caller's single-statement
-- transaction, and returns the task as stored.
--
-- code: 0 created; 1 an existing task with the same idempotency key (returned); 2 no
-- such workflow version; 3 a task with this id exists (task is NULL for 2 and 3, and
-- nothing is written).
CREATE FUNCTION hf_submit(
    p_task text, p_workflow text, p_version bigint, p_input text, p_key text,
    p_pending text, p_run_at bigint, p_now bigint, OUT code integer, OUT task tasks
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        SELECT * INTO task FROM tasks WHERE idempotency_key = p_key;
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
    INSERT INTO tasks (task_id, workflow, workflow_version, status, input, idempotency_key,
        pending_steps, next_run_at, event_seq, created_at, updated_at)
    VALUES (p_task, p_workflow, p_version, 'queued', p_input::json, p_key, p_pending::jsonb,
        hf_ts(p_run_at), 1, hf_ts(p_now), hf_ts(p_now))
    ON CONFLICT DO NOTHING
    RETURNING * INTO task;
    IF NOT FOUND THEN
        IF p_key IS NOT NULL THEN
            SELECT * INTO task FROM tasks WHERE idempotency_key = p_key;
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

-- Many submissions in one transaction, one round trip and one commit (the same reason
-- as hf_advance_many): hf_submit for each, in order, so that a later one sees an
-- earlier one's task (the same idempotency key twice gives one task). Returns one row
-- per submission: its number i (from the batch's own i fields), and hf_submit's code
-- and task. Any error aborts the whole statement, so that nothing of the batch is
-- committed, and the caller may run each submission alone.
CREATE FUNCTION hf_submit_many(p_batch jsonb) RETURNS TABLE (i integer, code integer, task tasks)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    a record;
    r record;
BEGIN
    FOR a IN SELECT * FROM jsonb_to_recordset(p_batch) AS x(n integer, task_id text,
            workflow text, version bigint, input text, key text, pending text,
            run_at bigint, now bigint) ORDER BY x.n LOOP
        SELECT * INTO r FROM hf_submit(a.task_id, a.workflow, a.version, a.input, a.key,
            a.pending, a.run_at, a.now);
        i := a.n;
        code := r.code;
        task := r.task;
        RETURN NEXT;
    END LOOP;
END
$$;
