"""Self-corrections: "the first one — no, the second one" means the second one.

People restart and correct themselves mid-turn ("the first, I mean the second", "the one
from March, sorry, the one for sixty dollars"). What they mean is what they said after the
last correction marker. ``restatement`` finds it; when the caller retracted a choice and
named no new one ("the second one, no wait"), there is nothing to choose, and the caller is
asked again rather than given the retracted choice.

"no" is a marker only with punctuation after it, as Whisper writes a correction ("no," "no
—"), and never as "No. 2" (Whisper's abbreviation of "number"); "no problem" and "no
worries" are not corrections. Pure: text in, text out.
"""

from __future__ import annotations

import re

_MARKERS = re.compile(
    r"""
    \b(?:
        i\ mean | actually | sorry | rather | wait | scratch\ that | correction
      | (?:no|nope|nah)(?=\s*[,.!;:\u2014\u2013-])(?!\.\s*\d)
    )\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
_NOT_A_CORRECTION = re.compile(r"\bno\s+(?:problem|worries)\b", re.IGNORECASE)


def restatement(text: str) -> str | None:
    """The words after the caller's last self-correction, or None when there is none.

    "" (or punctuation only) means a choice was retracted and none was named after it.
    """
    cleaned = _NOT_A_CORRECTION.sub(" ", text)
    markers = list(_MARKERS.finditer(cleaned))
    if not markers:
        return None
    return cleaned[markers[-1].end() :].strip(" ,.;:!?\u2014\u2013-")
