"""Zero-cost proxies: ``list_proxies()``, ``get_proxy(name)``, ``register_proxy``."""
from eznas.proxies import classic  # noqa: F401  (registers the proxies)
from eznas.proxies.base import PROXIES, Probe, Proxy, get_proxy, list_proxies, register_proxy

__all__ = ["PROXIES", "Probe", "Proxy", "get_proxy", "list_proxies", "register_proxy"]
