"""Tidy long-format result rows with provenance, written as parquet + JSON."""

from rdmeval.results.rows import RESULT_COLUMNS, ResultRow, provenance_from_run, read_rows, write_rows

__all__ = ["RESULT_COLUMNS", "ResultRow", "provenance_from_run", "read_rows", "write_rows"]
