"""Phone keys as caller turns: "press 1 to confirm, 2 for the next invoice, 0 for a person".

On a noisy line a caller can answer every question with the keypad. A key becomes the
``Utterance`` the policy would get from the matching words, so the conversation has one set
of rules whether the caller speaks or presses. Pure: the dialogue state and a key in.

==========  ===========================================================================
key         meaning
==========  ===========================================================================
0           a person (any time)
\\*          repeat the last question
1           yes / pay my bill (greeting) / invoice number one (while choosing)
2           the next invoice (confirming one of several) / no (other yes-no questions)
3-9         invoice number N while choosing from the list
#           ignored (many callers end entries with it)
==========  ===========================================================================

A key is stored in the call's audit trail (``caller-key``) only where it means something;
the session only counts the others, so digits typed in a row (a card number keyed in) are
never kept as a sequence.
"""

from __future__ import annotations

from agent.dialog.policy import DialogState
from agent.dialog.types import Step, Utterance

KEYS = frozenset("0123456789*#")
"""Keys a caller can press (RFC 4733 also defines A-D; those are ignored)."""


def keypress_utterance(state: DialogState, key: str) -> Utterance | None:
    """The caller turn a key stands for in ``state``; None when it means nothing here."""
    if key not in KEYS or key == "#":
        return None
    if key == "0":
        return _said("a person please", "request_human")
    if key == "*":
        return _said("repeat that", "repeat")
    step = state.step
    if step is Step.GREETING:
        return _said("pay my bill", "pay_invoice") if key == "1" else _unknown(key)
    if step is Step.CHOOSING:
        return _pick(int(key)) if 1 <= int(key) <= len(state.offered) else _unknown(key)
    if step is Step.CONFIRMING:
        if key == "1":
            return _said("yes", "affirm")
        if key == "2":
            return _next_invoice(state)
        return _unknown(key)
    if step in (Step.AFTER_DENY, Step.OFFER_CSR):
        return {"1": _said("yes", "affirm"), "2": _said("no", "deny")}.get(key) or _unknown(key)
    return None


def _next_invoice(state: DialogState) -> Utterance:
    """Key 2 while confirming: the invoice after the selected one, or "no" if it is the only."""
    offered = state.offered
    if len(offered) <= 1 or state.selected not in offered:
        return _said("no", "deny")
    position = (offered.index(state.selected) + 1) % len(offered)
    return _pick(position + 1)


def _pick(position: int) -> Utterance:
    return _said(f"number {position}", "select_invoice")


def _said(text: str, intent: str) -> Utterance:
    return Utterance(text=text, intent=intent, confidence=1.0)


def _unknown(key: str) -> Utterance:
    """A key with no meaning at this step counts as a turn not understood (reprompt)."""
    return Utterance(text=f"key {key}", intent=None, confidence=0.0)
