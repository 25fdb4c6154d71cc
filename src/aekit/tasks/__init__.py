"""What users do with a trained autoencoder: denoise (and, in time, encode, interpolate, inpaint...)."""
