"""The static HTML report of a run root: the table, charts and the GenEval gallery (``rdmeval report``)."""

from rdmeval.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
