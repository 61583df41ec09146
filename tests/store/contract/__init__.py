"""The store contract: one behaviour per test, each run on SQLite and on PostgreSQL.

A new backend is done when this package passes. One module per noun of the contract
(``test_jobs``, ``test_claims``, ``test_outcomes``, ``test_progress``, ``test_leases``,
``test_admin``, ``test_processes``, ``test_locks``, ``test_waiters``, ``test_schema``,
``test_store``, ``test_groups``); shared helpers live in ``helpers.py``. The schedule
contract comes next, as ``test_schedules.py``.

Backend-specific behaviour lives in ``tests/store/test_sqlite.py`` and
``tests/store/test_postgres.py``.
"""
