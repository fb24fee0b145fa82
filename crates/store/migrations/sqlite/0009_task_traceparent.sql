-- The submitter's W3C traceparent, when it sent one: the task's spans join the
-- submitter's trace, on whichever node runs it and after any restart.
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
