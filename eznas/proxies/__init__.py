"""Zero-cost proxies: ``list_proxies()``, ``get_proxy(name)``, ``parse_proxy(spec)``, ``register_proxy``."""
from eznas.proxies import aznas, classic, evolved, swap, sweet, zico_meco  # noqa: F401  (registers the proxies)
from eznas.proxies.base import (PROXIES, Probe, Proxy, ProxyCall, get_proxy, list_proxies, parse_proxy,
                                per_arch_calls, register_pool_proxy, register_proxy)

__all__ = ["PROXIES", "Probe", "Proxy", "ProxyCall", "get_proxy", "list_proxies", "parse_proxy", "per_arch_calls",
           "register_pool_proxy", "register_proxy"]
