"""Tabular MDPs with exact dynamics (placeholder: filled in by the tabular work)."""

TABULAR_ENTRIES: tuple = ()
