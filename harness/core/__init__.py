"""Foundations every layer may use: the error types, reading config files and writing
files atomically, YAML with line numbers, and managed subprocesses."""
