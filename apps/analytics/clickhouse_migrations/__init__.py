"""Versioned ClickHouse migrations, applied in name order by ``manage.py migrate_clickhouse``.

Each module ``NNNN_<name>.py`` defines ``OPERATIONS``: a list of SQL statements, each idempotent on
its own (``IF NOT EXISTS``), so a migration interrupted half-way is simply run again. SQL must run on
ClickHouse 18.16 and on current releases (see apps/core/clickhouse.py). Applied names are recorded in
the ``schema_migrations`` table of the same database.
"""
