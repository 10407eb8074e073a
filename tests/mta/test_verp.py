"""VERP addresses map back to their recipient row and cannot be forged."""

import pytest

from mta.verp import Verp, VerpError


def test_verp_address_round_trips_to_the_recipient_row() -> None:
    verp = Verp(b"secret", "bounces.example.com")
    for rid in (1, 255, 256, 123456789, 2**40):
        address = verp.address(rid)
        assert address.startswith("b+") and address.endswith("@bounces.example.com")
        assert verp.decode(address) == rid
        assert verp.decode(address.upper()) == rid  # some MTAs fold the case


@pytest.mark.parametrize(
    "address",
    [
        "b+aaaa-aaaaaaaa@bounces.example.com",  # forged MAC
        "b+@bounces.example.com",
        "postmaster@bounces.example.com",
        "x+ae-aaaaaaaa@bounces.example.com",
        "b+!!-??@bounces.example.com",
    ],
)
def test_forged_or_malformed_verp_addresses_are_refused(address: str) -> None:
    with pytest.raises(VerpError):
        Verp(b"secret", "bounces.example.com").decode(address)


def test_a_token_from_another_secret_or_domain_does_not_verify() -> None:
    address = Verp(b"other", "bounces.example.com").address(42)
    with pytest.raises(VerpError):
        Verp(b"secret", "bounces.example.com").decode(address)
    with pytest.raises(VerpError):
        Verp(b"secret", "bounces.example.org").decode(
            Verp(b"secret", "bounces.example.com").address(42)
        )
