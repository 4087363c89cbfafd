"""Search spaces: ``list_spaces()``, ``get_space(name, options)``, ``searchable_spaces()``."""
from eznas.spaces import darts, nats_sss, nb101, nb201, nb301, nbmacro, nds  # noqa: F401  (registers the spaces)
from eznas.spaces.base import (Arch, SearchSpace, SpaceOptions, check_network_options, get_space, list_spaces,
                               register_space, searchable_spaces, space_class, spaces_where)
from eznas.spaces.encoding import Encoding

__all__ = ["Arch", "Encoding", "SearchSpace", "SpaceOptions", "check_network_options", "get_space", "list_spaces",
           "register_space", "searchable_spaces", "space_class", "spaces_where"]
