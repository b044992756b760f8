"""Tests for the Python scripts in scripts/ (stdlib unittest)."""
