"""The migrations and the reference schema in db/schema.sql agree."""

from __future__ import annotations

from typing import LiteralString, cast

from procrastinate.schema import SchemaManager

from app.database import migrations
from app.database.connection import Connection, connect
from app.settings import PROJECT_ROOT

# Everything that makes up a schema, as comparable text; the migration
# ledger itself is the only table the reference does not have.
_CATALOG = """
SELECT 'column ' || c.table_name || '.' || c.column_name || ' ' || c.data_type
       || ' null=' || c.is_nullable || ' default=' || coalesce(c.column_default, '')
       || ' identity=' || c.is_identity AS item
  FROM information_schema.columns c
 WHERE c.table_schema = 'public' AND c.table_name <> 'ctgo_schema_migrations'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' '
       || pg_get_constraintdef(oid)
  FROM pg_constraint
 WHERE connamespace = 'public'::regnamespace
   AND conrelid::regclass::text <> 'ctgo_schema_migrations'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes
 WHERE schemaname = 'public' AND tablename <> 'ctgo_schema_migrations'
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid)
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
 WHERE r.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'type ' || t.typname || ' ' || t.typtype::text || ' '
       || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = t.oid), '')
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'c')
   AND (t.typrelid = 0
        OR (SELECT k.relkind FROM pg_class k WHERE k.oid = t.typrelid) = 'c')
"""


async def _catalog(conn: Connection) -> list[str]:
    cur = await conn.execute(_CATALOG)
    return sorted(str(row["item"]) for row in await cur.fetchall())


async def test_migrating_an_empty_database_gives_the_reference_schema(
    empty_db_url: str, db_url: str
) -> None:
    reference = await connect(empty_db_url, autocommit=True)
    migrated = await connect(db_url, autocommit=True)
    try:
        await reference.execute(SchemaManager.get_schema())
        schema_sql = (PROJECT_ROOT / "db" / "schema.sql").read_text()
        await reference.execute(cast(LiteralString, schema_sql))

        expected = await _catalog(reference)
        actual = await _catalog(migrated)
    finally:
        await reference.close()
        await migrated.close()

    assert len(expected) > 50
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert (missing, extra) == ([], [])


async def test_migrate_twice_applies_nothing_the_second_time(conn: Connection) -> None:
    assert await migrations.migrate(conn) == []
    assert await migrations.pending(conn) == []
