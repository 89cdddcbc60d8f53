"""The tracking pixel: hits, signed links, the embeddable snippet."""
