"""Tests of orchestrator.auth0."""
