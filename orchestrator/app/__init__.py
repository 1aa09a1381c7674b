"""The use cases: validate, chunk, run, resume, report, status, check, verify, sync.

Each takes settings objects and returns a typed result with its `Outcome`; it runs the event loop
where one is needed and turns Ctrl-C/SIGTERM into a saved, resumable stop. No exit codes here.
"""
