"""What the agent will probably say next, so its first words can be rendered ahead (pure).

While the caller is still thinking or talking, the likely answers to the prompt they just
heard are known: after "Would you like me to text you a link?" it is "yes" or "no"; after
three invoices were read, "the first/second/third one". The policy is a pure function, so
asking it what it *would* say to each of those costs nothing and changes nothing; the phone
path renders the first chunk of each reply in the background, and a reply that matches
starts from memory instead of waiting for Piper (an amount read back takes ~350 ms to
synthesise on 2 cores). A caller who says something else costs at most one wasted render.
"""

from __future__ import annotations

from agent.dialog.policy import DialogState, PaymentPolicy
from agent.dialog.types import Record, Say, Step, Utterance

ORDINALS = ("first", "second", "third", "fourth", "fifth")
MAX_REPLIES = 4
"""Replies prepared per turn at most (each costs one short Piper render)."""


def likely_replies(policy: PaymentPolicy, state: DialogState) -> list[str]:
    """What the agent would say to the likely next caller turns, most likely first.

    Only the words said before the first action with an outcome (sending the link,
    escalating, ending) are included: what follows those depends on their result.
    """
    replies: list[str] = []
    for heard in _likely_turns(state):
        _, actions = policy.step(state, heard)
        said: list[str] = []
        for action in actions:
            if isinstance(action, Say):
                said.append(action.text)
            elif not isinstance(action, Record):
                break
        reply = " ".join(said)
        if reply and reply not in replies:
            replies.append(reply)
    return replies[:MAX_REPLIES]


def _likely_turns(state: DialogState) -> list[Utterance]:
    if state.step is Step.GREETING:
        return [Utterance("I'd like to pay my bill", "pay_invoice", 1.0)]
    if state.step is Step.CHOOSING:
        picks = ORDINALS[: len(state.offered)]
        return [Utterance(f"the {ordinal} one", "select_invoice", 1.0) for ordinal in picks]
    if state.step in (Step.CONFIRMING, Step.AFTER_DENY, Step.OFFER_CSR):
        return [Utterance("yes", "affirm", 1.0), Utterance("no", "deny", 1.0)]
    return []
