"""How every gouache service starts, authenticates, logs, measures and fails."""
