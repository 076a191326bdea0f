"""WSGI entry points for external servers (gunicorn, uwsgi)."""
