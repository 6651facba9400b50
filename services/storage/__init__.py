"""The storage service: images, signed upload and download URLs, and the style catalog."""
