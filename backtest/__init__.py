"""Backtests: replay a recorded history of the input topics through a rules version, off the live path."""
