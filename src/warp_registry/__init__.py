"""warp-registry: a self-hostable implementation of Cloudflare's WARP device-registration API."""

__version__ = "0.1.0"
