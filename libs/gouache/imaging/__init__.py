"""Image handling shared by the services: decode and validate, encode, colour, tiling."""
