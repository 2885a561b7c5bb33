"""Reporting: figures and tables built from run records."""
