"""Running jobs: the job manager in the gRPC front (queue, scheduling, events; manager.py), the worker
processes that run handlers (workers.py) and their typed messages (messages.py), the JobContext a
handler sees (context.py), and tasks for work a job splits up itself (tasks.py)."""
