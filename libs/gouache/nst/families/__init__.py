"""Style families: the different ways of stylizing an image, one module each."""
