import pytest

from eznas.registry import Registry, UnknownNameError


def test_register_get_and_list_with_pattern():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha")(1)
    reg.register("beta")(2)
    reg.register("alphabet")(3)
    assert reg.get("beta") == 2
    assert reg.names() == ["alpha", "alphabet", "beta"]
    assert reg.names("alpha*") == ["alpha", "alphabet"]
    assert "alpha" in reg and "gamma" not in reg and len(reg) == 3


def test_unknown_name_lists_valid_names_and_suggests():
    reg: Registry[int] = Registry("proxy")
    reg.register("synflow")(1)
    reg.register("naswot")(2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("synflw")
    msg = str(err.value)
    assert "unknown proxy 'synflw'" in msg and "did you mean synflow" in msg and "naswot, synflow" in msg


def test_duplicate_registration_is_an_error():
    reg: Registry[int] = Registry("space")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(2)


def test_project_registries_are_filled():
    from eznas.proxies import list_proxies
    from eznas.spaces import list_spaces

    assert {"params", "flops", "synflow", "naswot", "grad_norm", "snip"} <= set(list_proxies())
    assert {"NASBench201", "DARTS", "NDS"} <= set(list_spaces())
