"""What the server keeps on disk: jobs and their events (jobs.py, SQLite) and the content-addressed
artifact store (artifacts.py), which worker processes write results to directly."""
