"""Clients of the services precache depends on (image service, Nova)."""
