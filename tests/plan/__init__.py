"""Tests of orchestrator.plan."""
