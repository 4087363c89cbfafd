"""Search spaces: ``list_spaces()``, ``get_space(name, options)``."""
from eznas.spaces import darts, nats_sss, nb101, nb201, nb301, nbmacro, nds  # noqa: F401  (registers the spaces)
from eznas.spaces.base import Arch, SearchSpace, SpaceOptions, get_space, list_spaces, register_space

__all__ = ["Arch", "SearchSpace", "SpaceOptions", "get_space", "list_spaces", "register_space"]
