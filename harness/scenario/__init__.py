"""Scenarios: the model, its YAML source with file:line errors, which files are scenarios."""
