from alembic import context

from precache.db import api, models

config = context.config


def run_migrations() -> None:
    engine = api.create_engine(config.get_main_option('sqlalchemy.url', ''))
    with engine.connect() as connection:
        context.configure(connection=connection,
                          target_metadata=models.Base.metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
