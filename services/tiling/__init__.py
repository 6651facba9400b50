"""The tiling worker: executes created jobs by tiling, calling inference and storing results."""
