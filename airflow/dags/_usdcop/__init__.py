"""Shared pieces of the USD/COP DAGs: their settings and the command each task runs."""
