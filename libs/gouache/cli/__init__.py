"""The `gouache` command: run the embedded mesh and stylize images through it."""
