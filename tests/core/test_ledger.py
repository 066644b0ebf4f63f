"""The note ledger: owners of a key, the wire's view of it, and the exit paths."""

from __future__ import annotations

from liveduet.core.ledger import Ledger


def test_a_shared_key_ends_when_its_last_owner_lets_go() -> None:
    ledger = Ledger()
    assert [o.msg for o in ledger.on(0, 1, 60, 90, 0.0)] == [(0x91, 60, 90)]
    assert [o.msg for o in ledger.thru_on(1, 60, 70, 1.0)] == [(0x91, 60, 70)]
    assert ledger.off(0, 2.0) == []                          # the thru copy still holds it
    assert ledger.sounding == {(1, 60)}
    assert [o.msg for o in ledger.thru_off(1, 60, 3.0)] == [(0x81, 60, 0)]
    assert ledger.empty


def test_a_retriggered_key_on_the_wire_has_one_owner() -> None:
    ledger = Ledger()
    for msg in [(0x90, 60, 100), (0x90, 60, 80), (0x92, 64, 90), (0xB0, 7, 100), (0xF8,)]:
        ledger.sent(msg)
    assert ledger.sounding == {(0, 60), (2, 64)}
    assert ledger.ends_sounding((0x90, 60, 0)) and not ledger.ends_sounding((0x80, 61, 0))
    ledger.sent((0x80, 60, 0))                              # one note-off ends both note-ons
    assert ledger.sounding == {(2, 64)}
    assert ledger.offs() == [(0x82, 64, 0)]
    assert ledger.empty and ledger.offs() == []


def test_release_all_closes_machine_voices_then_thru_copies() -> None:
    ledger = Ledger()
    ledger.on(2, 3, 67, 100, 0.0)
    ledger.on(1, 2, 64, 100, 0.0)
    ledger.thru_on(0, 48, 100, 0.0)
    assert ledger.pitch(1) == 64 and ledger.pitch(0) is None
    offs = ledger.release_all(5.0)
    assert [(o.msg, o.voice) for o in offs] == [((0x82, 64, 0), 1), ((0x83, 67, 0), 2),
                                                ((0x80, 48, 0), None)]
    assert ledger.empty
