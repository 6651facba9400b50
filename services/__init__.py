"""The gouache services, one package each; each runs as `python -m services.<name>`."""
