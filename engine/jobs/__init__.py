"""File jobs: answer a JSONL file exactly once (reading, resuming, writing, reporting bad lines). `ray/` schedules
the same job's groups on a Ray cluster with the same pieces."""
