"""How the understanding benchmark scores what the agent understood: pure, values in and out.

A ``Heard`` is one clip after the real path (segments from the listener, each parsed by Rasa).
When the endpoint split a scripted turn (a premature cut-off), the agent would have answered
the first piece at once: intent and selection are judged on the first piece with words, the
word error rate on all pieces together (with any turn noise started after the words). A whole
scripted call is played through the real ``PaymentPolicy`` (pure): the caller answers the
read-back with the "yes" turn when it is the invoice they want and with the "no" turn when it
is not, and the call counts as wrong when a link for another invoice would have been texted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.asr.whisper import normalize_words
from agent.bench.asr import word_errors
from agent.bench.turns import ScriptedCall, Turn
from agent.dialog.policy import PaymentPolicy
from agent.dialog.selection import choose_invoice
from agent.dialog.types import CallerContext, InvoiceView, SendLink, Step, Utterance, Verification


@dataclass(frozen=True)
class Heard:
    """One clip through the real path: the listener's segments, each as Rasa parsed it."""

    segments: tuple[Utterance, ...]
    """Turns that started while the scripted words were being said."""
    after: tuple[str, ...] = ()
    """Texts of turns that started after the words (noise heard as a turn): in the WER only."""

    @property
    def first(self) -> Utterance:
        """What the agent acts on: the first segment with words (an empty one if none)."""
        for segment in self.segments:
            if segment.text.strip():
                return segment
        return Utterance("", None, 0.0)

    @property
    def text(self) -> str:
        texts = [s.text for s in self.segments] + list(self.after)
        return " ".join(t.strip() for t in texts if t.strip())


@dataclass
class Tally:
    """The figures of one model × condition."""

    clips: int = 0
    intents_right: int = 0
    selections: int = 0
    selections_right: int = 0
    words: int = 0
    word_errors: int = 0
    cut_offs: int = 0
    calls: int = 0
    wrong_invoice_calls: int = 0
    misses: list[str] = field(default_factory=list)

    def row(self) -> dict[str, str]:
        def pct(part: int, whole: int) -> str:
            return f"{100 * part / whole:.1f}%" if whole else "-"

        return {
            "clips": str(self.clips),
            "intent": pct(self.intents_right, self.clips),
            "selection": pct(self.selections_right, self.selections),
            "WER": pct(self.word_errors, self.words),
            "cut-offs": str(self.cut_offs),
            "wrong invoice": f"{self.wrong_invoice_calls}/{self.calls}",
        }


def intent_of(heard: Utterance, threshold: float) -> str | None:
    """The intent the policy acts on: None below its confidence threshold."""
    return heard.intent if heard.confidence >= threshold else None


def selection_of(turn: Turn, heard: Utterance, offered: Sequence[InvoiceView]) -> int | None:
    """``choose_invoice`` as the policy calls it: no positions before the list was read."""
    by_position = turn.answers != "greeting"
    return choose_invoice(heard.text, heard.entities, offered, by_position=by_position)


def score_clip(
    tally: Tally,
    turn: Turn,
    *,
    heard: Heard,
    offered: Sequence[InvoiceView],
    threshold: float,
    label: str,
) -> None:
    """Add one clip to ``tally``; ``label`` names it in the list of misses."""
    tally.clips += 1
    first = heard.first
    intent = intent_of(first, threshold)
    wrong = []
    if intent == turn.intent:
        tally.intents_right += 1
    else:
        wrong.append(f"intent {intent}")
    if turn.offered is not None:
        tally.selections += 1
        picked = selection_of(turn, first, offered)
        if picked == turn.selects:
            tally.selections_right += 1
        else:
            wrong.append(f"selected {picked}")
    reference = normalize_words(turn.spoken)
    tally.words += len(reference.split())
    tally.word_errors += word_errors(reference, normalize_words(heard.text))
    if sum(1 for s in heard.segments if s.text.strip()) > 1:
        tally.cut_offs += 1
        wrong.append(f"cut into {len(heard.segments)}")
    if wrong:
        tally.misses.append(f"{label}: heard {heard.text!r} ({', '.join(wrong)})")


def texted_invoice(
    policy: PaymentPolicy,
    call: ScriptedCall,
    offered: tuple[InvoiceView, ...],
    heard: dict[str, Utterance],
) -> str | None:
    """The invoice number the agent would text in ``call`` (None: no link was sent).

    ``heard[turn_id]`` is what the agent acted on for each of the call's turns. At most one
    read-back is answered: after a "no" the caller would choose again, which is not a wrong
    invoice texted.
    """
    caller = CallerContext(Verification.VERIFIED, "0123", offered, len(offered))
    state, _ = policy.start(caller)
    wanted = offered[call.wants]
    plan: Iterable[str] = (call.pay, call.choose)
    for turn_id in plan:
        if state.step is Step.CONFIRMING or state.step is Step.ENDED:
            break
        state, actions = policy.step(state, heard[turn_id])
        if sent := _sent(actions):
            return sent
    if state.step is not Step.CONFIRMING:
        return None
    answer = call.yes if state.selected == wanted else call.no
    _, actions = policy.step(state, heard[answer])
    return _sent(actions)


def _sent(actions: Iterable[object]) -> str | None:
    for action in actions:
        if isinstance(action, SendLink):
            return action.invoice_number
    return None


def score_call(
    tally: Tally,
    policy: PaymentPolicy,
    *,
    call: ScriptedCall,
    offered: tuple[InvoiceView, ...],
    heard: dict[str, Utterance],
    label: str,
) -> None:
    """Add one scripted call to ``tally``: wrong when another invoice would be texted."""
    tally.calls += 1
    sent = texted_invoice(policy, call, offered, heard)
    if sent is not None and sent != offered[call.wants].number:
        tally.wrong_invoice_calls += 1
        tally.misses.append(f"{label}: call {call.id} texted {sent}")
