"""The SQL warehouse: a persistent DuckDB over the lake, SQL files, models, migrations."""
