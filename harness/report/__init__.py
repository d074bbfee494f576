"""Reports: CSV, JSON and one self-contained HTML page, rebuilt from a run folder."""

from harness.report.files import format_figures, format_table, summary_json, write_reports

__all__ = ["format_figures", "format_table", "summary_json", "write_reports"]
