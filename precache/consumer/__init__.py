"""precache-consumer: Glance and Nova notifications in, conductor calls out.

It reaches the conductor only through ``conductor/rpcapi.py`` (an
import-linter contract checks it).
"""
