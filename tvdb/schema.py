"""The one ordered migration history of the tvdb database, assembled from the parts each table's
owner declares beside its store (table → module in README "Ledger").

Names and order are those of every released tvdb, so an existing database applies exactly the
steps it lacks. A new step is appended here, its parts written in the owners' modules. This module
sits above every owner (it imports them), so only composition roots import it: `tvdb.db`, the CLI,
the scenario runner.

Numbering: m001–m009 core and budget, m010–m019 reports, retention, repricing and alerts,
m020–m029 run history, m030–m039 the service router's embedding spaces.
"""

from __future__ import annotations

from tvdb.history import views
from tvdb.ledger import alert_store, reservations, usage_store
from tvdb.pipeline import jobs
from tvdb.pipeline import store as vector_store
from tvdb.storage import History, step

HISTORY = History("tvdb", (
    step("m001_core", jobs.M001, vector_store.M001, usage_store.M001),
    step("m002_reservations", reservations.M002),
    step("m003_budget_index", usage_store.M003),
    step("m004_assumed_spend", usage_store.M004, reservations.M004),
    step("m010_alerts", alert_store.M010),
    step("m011_usage_daily", usage_store.M011),
    step("m012_reprices", usage_store.M012),
    step("m013_run_owner", jobs.M013),
    step("m014_run_owner_started", jobs.M014),
    step("m015_usage_daily_assumed", usage_store.M015),
    step("m020_run_metrics", jobs.M020, usage_store.M020),
    step("m021_views", views.M021),
    step("m030_vector_space", vector_store.M030),
    step("m022_job_warnings", jobs.M022),  # run history's range, appended: released steps keep their order
    step("m023_spec_without_webhook_url", jobs.M023),
    step("m031_covering_space_index", vector_store.M031),
    step("m024_run_active_time", jobs.M024, views.M024),  # appended after m031: released steps keep their order
))
