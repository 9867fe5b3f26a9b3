"""Scenarios: the model of a scenario file, its criteria, the runner and its report."""
