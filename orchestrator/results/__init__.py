"""What a run tells afterwards: its report, its status, the pre-flight, the verification.

Derived from the run directory and the API; never decides an exit code.
"""
