"""The understanding benchmark's corpus: the turn file is sound and the audio is reproducible.

No Whisper here (``scripts/bench-understanding`` measures that): the script parses, names only
real intents and invoices, its written words give the expected choice where the selection
code is meant to manage them, and ``make-corpus`` makes the same bytes twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.audio.convert import read_wav
from agent.audio.format import TELEPHONE_RATE
from agent.bench.corpus import LEAD_MS, TRAIL_MS
from agent.bench.turns import ANSWERS, Turn, load_script
from agent.dialog.selection import choose_invoice
from agent.paths import PROJECT_ROOT

SCRIPT = load_script()
DOMAIN = yaml.safe_load((PROJECT_ROOT / "models" / "nlu" / "domain.yml").read_text())


def test_the_turn_file_covers_the_ground() -> None:
    assert 150 <= len(SCRIPT.turns) <= 250
    answers = {t.answers for t in SCRIPT.turns}
    assert answers == set(ANSWERS)
    assert {t.intent for t in SCRIPT.turns} == set(DOMAIN["intents"])  # each one exercised
    assert sum(1 for t in SCRIPT.turns if "<pause" in t.words) >= 20
    assert len(SCRIPT.calls) >= 5


def test_every_intent_is_one_rasa_knows() -> None:
    unknown = [(t.id, t.intent) for t in SCRIPT.turns if t.intent not in DOMAIN["intents"]]
    assert unknown == []


def test_every_selection_is_in_its_offered_list() -> None:
    for turn in SCRIPT.turns:
        if turn.selects is not None:
            assert turn.offered is not None, turn.id
            assert 0 <= turn.selects < len(SCRIPT.offered[turn.offered]), turn.id
    for call in SCRIPT.calls:
        assert 0 <= call.wants < len(SCRIPT.offered[call.offered]), call.id


@pytest.mark.parametrize(
    "turn", [t for t in SCRIPT.turns if t.offered and t.text_solvable], ids=lambda t: t.id
)
def test_the_written_words_select_the_expected_invoice(turn: Turn) -> None:
    assert turn.offered is not None
    by_position = turn.answers != "greeting"  # as the policy calls it
    picked = choose_invoice(turn.plain, (), SCRIPT.offered[turn.offered], by_position=by_position)
    assert picked == turn.selects, turn.plain


def test_pause_marks_become_pieces_and_leave_the_reference() -> None:
    turn = SCRIPT.turn("amt-hundred-pause")
    assert turn.pieces == ["the one for a hundred and", 900, "twenty-nine fifty"]
    assert turn.spoken == "the one for a hundred and twenty-nine fifty"
    assert SCRIPT.turn("pos-um-first").plain == "the first one"


def make_corpus(out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "agent.bench.corpus", "--out", str(out), "--turns", "pos-second",
         "--voices", "piper-1.0", "espeak-a", "--conditions", "car-10"],
        check=True, cwd=PROJECT_ROOT, capture_output=True, timeout=300,
    )  # fmt: skip


def test_making_the_corpus_again_gives_the_same_bytes(tmp_path: Path) -> None:
    make_corpus(tmp_path / "one")
    make_corpus(tmp_path / "two")
    clips = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.wav"))
    assert [str(c) for c in clips] == [
        "espeak-a/car-10/pos-second.wav",
        "piper-1.0/car-10/pos-second.wav",
    ]
    for clip in clips:
        assert (tmp_path / "one" / clip).read_bytes() == (tmp_path / "two" / clip).read_bytes()
        samples, rate = read_wav(tmp_path / "one" / clip)
        assert rate == TELEPHONE_RATE
        seconds = samples.size / rate
        assert seconds > (LEAD_MS + TRAIL_MS) / 1000 + 0.3  # the words are there
        lead = samples[: rate * LEAD_MS // 1000 // 2].astype(np.float64)
        assert np.sqrt((lead**2).mean()) > 10  # the car noise runs under the silence too
    rows = [json.loads(line) for line in (tmp_path / "one" / "manifest.jsonl").open()]
    assert {r["voice"] for r in rows} == {"piper-1.0", "espeak-a"}
    assert all(r["intent"] == "select_invoice" and r["selects"] == 1 for r in rows)
    assert (tmp_path / "one" / "manifest.jsonl").read_bytes() == (
        tmp_path / "two" / "manifest.jsonl"
    ).read_bytes()
