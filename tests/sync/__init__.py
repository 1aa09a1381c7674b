"""Tests of orchestrator.sync."""
