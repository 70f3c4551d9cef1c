"""The pipeline stages (upload, parse, chunk, embed, validate, store) and the job state machine."""
