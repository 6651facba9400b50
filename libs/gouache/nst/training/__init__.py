"""Training the style families' networks: configs, data, the training loop, one module per family."""
