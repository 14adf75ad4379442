"""Names in DuckDB SQL: quoting, the tables a query reads, the warehouse file's names.

Shared by the lake's SQL paths (:mod:`ticklake.lake.sql`,
:mod:`ticklake.lake.sql_warehouse`) and the warehouse stage above them.
"""

from __future__ import annotations

import re

import duckdb

#: The persistent warehouse next to the lake's datasets.
WAREHOUSE_FILE = "warehouse.duckdb"
#: The warehouse's own bookkeeping schema (generated views, migrations, model state).
META_SCHEMA = "_ticklake"


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB identifier (a double quote inside is doubled).

    Examples:
        >>> print(quote_ident("my table"))
        "my table"
    """
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a DuckDB string literal.

    Examples:
        >>> print(quote_literal("it's"))
        'it''s'
    """
    return "'" + text.replace("'", "''") + "'"


def table_names(query: str) -> list[list[str]] | None:
    """The tables ``query`` reads, each as its dotted parts (unquoted); None if it does not
    parse.

    Examples:
        >>> table_names('SELECT * FROM bronze."t" AS x, v')
        [['bronze', 't'], ['v']]
    """
    con = duckdb.connect()
    try:
        names = con.get_table_names(query, qualified=True)
    except duckdb.Error:
        return None
    finally:
        con.close()
    out = [
        re.split(r"\s+AS\s+", raw, flags=re.IGNORECASE)[0].replace('"', "").split(".")
        for raw in names
    ]
    return sorted(out)
