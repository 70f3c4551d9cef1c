"""tvdb's pytest plugin (entry point `pytest11: tvdb` → tvdb.pytest_plugin.plugin).

- scenario files (tvdb.scenarios.discover's rule, the one `tvdb replay --all` uses) collect as test
  items: replayed when their cassette exists, run mock otherwise (tvdb.pytest_plugin.items);
- the `tvdb` fixture and `@pytest.mark.tvdb(...)` open `tvdb.session()` for a test
  (tvdb.pytest_plugin.fixture);
- `--tvdb-mode`, `--tvdb-record`, `--tvdb-data-dir` (tvdb.pytest_plugin.options), and a terminal
  summary line of real spend and dollars avoided (tvdb.pytest_plugin.tally).

Loading it imports pytest and the standard library only, and does no I/O: pytest loads it in every
run of every project that has tvdb installed.
"""
