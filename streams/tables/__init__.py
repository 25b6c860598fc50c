"""Projections: one module per projection, each with its tables' names and its pure folds."""
