"""The measurements behind docs/MEASUREMENTS.md, each run from the repository root as a module:
`.venv/bin/python -m benchmarks.heldout --help`."""
