"""Tests of orchestrator.app."""
