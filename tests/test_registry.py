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


def test_valid_rules_and_check_values_name_the_first_bad_value():
    from eznas.errors import EznasError
    from eznas.registry import Valid, above, at_least, check_values

    assert at_least(1)(1) and not at_least(1)(0) and above(0)(1e-9) and not above(0)(0)
    assert not at_least(1)("x") and not above(0)(None)  # a value that cannot be compared is not valid
    even = Valid(lambda v: v % 2 == 0, "even")
    check_values({"a": 2, "b": None}, {"a": even, "b": at_least(1), "c": at_least(1)})  # None / absent: unchecked
    with pytest.raises(EznasError) as err:
        check_values({"a": 3, "b": 0}, {"a": even, "b": at_least(1)}, "where", name=lambda k: f"--{k}")
    assert str(err.value) == "where: --a must be even, got 3"
    with pytest.raises(EznasError, match="^b must be >= 1, got 0$"):
        check_values({"b": 0}, {"b": at_least(1)})
