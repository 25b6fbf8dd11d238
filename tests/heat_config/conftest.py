"""Fixtures for the dispatcher and signal tests; their helpers live in tests.support.deployments and .dispatcher."""
from tests.servers.cloud import cloud  # noqa: F401  (fixture re-exported)
