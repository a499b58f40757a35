"""`streamtube ledger verify` on a node's database (SQLite, and PostgreSQL): exits 0 and says so
when every transaction balances, 1 naming each one that does not, on an empty ledger and on one
written by hand around the node."""
import sqlite3
import subprocess

import pytest

from conftest import binary, psql

ROWS = [
    "INSERT INTO ledger_transactions (id, kind, reference, created_at) VALUES ('t1', 'payment', 'payment:o1', 0)",
    "INSERT INTO ledger_entries (transaction_id, line, account, currency, amount) VALUES ('t1', 0, 'gateway:test', 'USD', 1000)",
    "INSERT INTO ledger_entries (transaction_id, line, account, currency, amount) VALUES ('t1', 1, 'creator:c', 'USD', -900)",
    "INSERT INTO ledger_entries (transaction_id, line, account, currency, amount) VALUES ('t1', 2, 'platform:fees', 'USD', -100)",
]
BROKEN = "INSERT INTO ledger_entries (transaction_id, line, account, currency, amount) VALUES ('t1', 3, 'creator:c', 'USD', -1)"


def verify(data_dir, database=None):
    args = [binary(), "ledger", "verify", "--data-dir", str(data_dir)] + (["--database", database] if database else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_ledger_verify_exits_0_only_when_every_transaction_balances(engine, tmp_path, request):
    url = request.getfixturevalue("postgres") if engine == "postgres" else None

    def run(statement):
        if url:
            psql(url, statement)
        else:
            with sqlite3.connect(tmp_path / "streamtube.sqlite") as c:
                c.execute(statement)

    out = verify(tmp_path, url)  # a new database: migrated, empty, balanced
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0 transactions, 0 entries: every transaction balances"
    for row in ROWS:
        run(row)
    out = verify(tmp_path, url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1 transactions, 3 entries: every transaction balances"
    run(BROKEN)
    out = verify(tmp_path, url)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["1 transactions, 4 entries: NOT BALANCED", "  t1: USD entries sum to -1, not 0"]
