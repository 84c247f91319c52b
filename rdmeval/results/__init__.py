"""The results layer: the table, paired comparisons and run roots; the row schema it reads is rdmeval.api.rows (re-exported)."""

from rdmeval.api.rows import (
    NESTED_COLUMNS,
    RESULT_COLUMNS,
    ResultRow,
    nested_from_text,
    nested_to_text,
    provenance_from_run,
    read_rows,
    write_rows,
)

__all__ = ["NESTED_COLUMNS", "RESULT_COLUMNS", "ResultRow", "nested_from_text", "nested_to_text", "provenance_from_run",
           "read_rows", "write_rows"]
