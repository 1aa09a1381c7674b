"""Tests of orchestrator.upload."""
