"""eznas: discover zero-cost NAS proxies by genetic programming, and score architectures with them."""
__version__ = "0.1.0"
