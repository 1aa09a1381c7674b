"""Tests of orchestrator.cli."""
