"""gouache: neural style transfer as a production service."""
