"""Tidy long-format result rows with provenance, written as parquet + JSON."""

from rdmeval.results.rows import (
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
