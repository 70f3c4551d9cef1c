"""The cost ledger: usage rows, prices, budgets and reports (SQLite through sqlite-utils)."""
