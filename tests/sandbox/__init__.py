"""Tests of orchestrator.sandbox."""
