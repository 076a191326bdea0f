"""precache-api: Nova's POST /os-aggregates/{id}/images, and jobs.

See app.py for the middleware, router.py for the routes, openapi.yaml for
the contract.
"""
