"""Tests of orchestrator.results."""
