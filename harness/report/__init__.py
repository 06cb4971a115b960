"""Reporting beside the tables: learning curves (curves.py) and one self-contained HTML report per plan (html.py)."""
