"""The inference service: runs loaded style-transfer model versions for tiling."""
