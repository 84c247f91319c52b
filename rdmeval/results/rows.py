"""The result rows' schema and I/O live in :mod:`rdmeval.api.rows` (a contract the scorers write to);
re-exported here for the results layer."""

from rdmeval.api.rows import (  # noqa: F401
    NESTED_COLUMNS,
    RESULT_COLUMNS,
    ResultRow,
    nested_from_text,
    nested_to_text,
    provenance_from_run,
    read_rows,
    write_rows,
)
