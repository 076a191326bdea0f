"""The conductor: turns a request into per-host work and records it."""
