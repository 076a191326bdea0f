"""Handlers: one module per resource, plain functions ``(req, **path)``.

A handler checks policy, validates, calls the conductor through its RPC
client and shapes the answer; errors are raised (ours or webob's) and
turned into faults by the application.
"""
