"""Run history: what past runs did, stage by stage and call by call, read from the database.

`store` holds the SQL (runs, jobs, job_stages, events, usage, vectors — read only); `compare`,
`advise`, `timeline` and `dashboard` turn what it reads into plain frozen values for the CLI to
render. Nothing here writes, prints or calls a service.
"""
