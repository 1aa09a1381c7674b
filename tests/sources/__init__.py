"""Tests of orchestrator.sources."""
