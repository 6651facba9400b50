"""Style-transfer engine: encoders, losses, style families and the model registry."""
