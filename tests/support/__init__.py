"""Helpers shared by the API tests: server, clients, GraphQL documents and steps (no tests, no fixtures)."""
