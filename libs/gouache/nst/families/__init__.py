"""Style families: the different ways of stylizing an image, one module each (feedforward
with two helpers: feedforward_network.py and feedforward_styles.py)."""
