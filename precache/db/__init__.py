"""The durable job store (SQLAlchemy; SQLite by default, PostgreSQL too)."""
