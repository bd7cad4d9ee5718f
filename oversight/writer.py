"""One transaction per batch: insert every record by its own id (a repeat is a no-op), then
recompute the status of every alert the batch touched."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, Table

from oversight import status
from oversight.records import Decoded


def insert_ignoring_repeats(conn: Connection, table: Table, rows: list[dict]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the ledger supports SQLite and PostgreSQL
        raise RuntimeError(f"unsupported ledger database: {conn.dialect.name}")
    conn.execute(insert(table).on_conflict_do_nothing(), rows)


def write_batch(conn: Connection, batch: list[Decoded]) -> None:
    by_table: dict[Table, dict[tuple, dict]] = defaultdict(dict)
    touched: set[str] = set()
    cases = []
    for decoded in batch:
        for table, row in decoded.rows:
            key = tuple(row[c.name] for c in table.primary_key.columns)
            by_table[table].setdefault(key, row)  # first wins, as in the database
        touched.update(decoded.kind.alert_ids(decoded.record))
        if decoded.kind.name == "Ingested[CaseReport]":
            cases.append(decoded.record.event)
    for table, rows in by_table.items():
        insert_ignoring_repeats(conn, table, list(rows.values()))
    for case in cases:
        touched |= status.alerts_of_case(conn, case.victim_phone, case.victim_account)
    status.refresh(conn, touched)
