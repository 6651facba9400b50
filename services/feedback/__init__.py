"""The feedback service: ratings from job owners and per model version quality aggregates."""
