"""A search report a person can read: Pareto plots, bundles, sensitivity, audio."""

from __future__ import annotations

from autocompress.report._data import BundleRow, ReportData, TrialPoint, attach_bundles, load_report_data, sensitivity
from autocompress.report._html import point_ids, render_html, write_report

__all__ = [
    "BundleRow",
    "ReportData",
    "TrialPoint",
    "attach_bundles",
    "load_report_data",
    "point_ids",
    "render_html",
    "sensitivity",
    "write_report",
]
