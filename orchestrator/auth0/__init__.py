"""The remote service: Auth0's Management API as the tool uses it. Knows nothing about runs."""
