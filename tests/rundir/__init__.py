"""Tests of orchestrator.rundir."""
