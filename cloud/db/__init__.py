"""PostgreSQL access: pool, migrations and repositories (the only place with SQL)."""
