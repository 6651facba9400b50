"""Generated from protos/ by scripts/contracts.py; do not edit."""
