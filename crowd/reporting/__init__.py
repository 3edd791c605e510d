"""Reporting: paper-vs-reproduced tables, the report, the one figure helper, plots, notebook hygiene."""
