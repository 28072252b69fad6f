"""Text from token ids while they are generated: streaming detokenisation and stop strings.

Decoding tokens one at a time and joining the pieces is not decoding the sequence: byte-level BPE
splits a character's UTF-8 bytes over several tokens; SentencePiece byte fallback decodes a run of
`<0x..>` pieces together, as text if the run is valid UTF-8 and as one U+FFFD per piece if not, so
a late byte can turn "你" back into "���"; Metaspace and WordPiece decoders treat the first token
differently (no leading space, no "##" join); clean_up_tokenization rewrites " ." and " ' " once
the next characters arrive. Both helpers therefore decode a short window of recent tokens with
context before it (the offset technique of transformers' TextStreamer and text-generation-inference)
and trust only the part of that text no later token can change. Everything goes through a
`decode(ids) -> str` function, so this module never sees a tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice
from os.path import commonprefix

Decode = Callable[[list[int]], str]  # token ids -> text, e.g. Tokenizer.decode
StopCheck = Callable[[list[int]], bool]  # generated ids -> has a stop string appeared? (as in search.py)

REPLACEMENT = "\ufffd"  # what decoders write for bytes that are not (yet) a whole character
_TIDY_CHARS = 4  # clean_up_tokenization can still rewrite text from a space or ' among the last 4 characters
_KEEP = 8  # tokens a stream keeps as context when it forgets older ones
_MAX_WINDOW = 16  # tokens a stream holds before it tries to forget the oldest
_CUT_TRIES = 4  # cut points tried per slide; a later push tries again
_STOP_WINDOW = 8  # tokens a stop check decodes first; doubled while too short
_PROBES = 8  # tokens kept to tell byte-level BPE from byte fallback
_STOP_GUARD = 4  # characters after a window's first token that may still differ from the whole text


class _ByteRuns:
    """Which tokens a SentencePiece-style byte-fallback decoder may still fuse with later tokens.

    Byte fallback decodes a run of byte pieces together: text if the run is valid UTF-8, else one
    U+FFFD per piece, so a late invalid byte revokes text already complete ("你" becomes "����").
    A byte piece decodes alone to one ASCII character, U+FFFD, or nothing (a space the decoder
    strips): only such tokens are suspects. Those that decode alone to U+FFFD ("breakers") count as
    byte pieces; an ASCII suspect is tested by sandwiching it between breakers, where a byte piece
    gives nothing but U+FFFD and any other token shows its own text. Until a breaker is seen, every
    suspect counts as a byte piece, which only delays text.

    Byte-level BPE never revokes text: it decodes all bytes at once, and an unfinished character at
    the end is one U+FFFD that the stream holds anyway. It gives itself away when an unfinished
    character absorbs a further byte and stays one U+FFFD, which byte fallback never does (two
    invalid pieces make two); from then on no token joins anything.
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._alone: dict[int, str] = {}
        self._joins: dict[int, bool] = {}
        self._probes: list[int] = []  # a few tokens whose text alone ends in U+FFFD
        self._breaker: int | None = None  # the first token seen that decodes alone to U+FFFD
        self._lossy = False  # byte-level BPE: nothing is revoked

    def joins(self, token_id: int) -> bool:
        """Whether the token may be part of a run of byte pieces that later tokens can still change."""
        if self._lossy:
            return False
        if token_id in self._joins:
            return self._joins[token_id]
        alone = self.alone(token_id)
        if alone.endswith(REPLACEMENT):
            self._probe(token_id)
            if self._lossy:
                return False
        if alone == REPLACEMENT:
            self._breaker = token_id if self._breaker is None else self._breaker
            self._joins[token_id] = True
        elif not (alone == "" or (len(alone) == 1 and alone < "\x80")):
            self._joins[token_id] = False
        elif self._breaker is None:
            return True  # a suspect; not cached: decided for good once a breaker turns up
        else:
            b = self._breaker
            self._joins[token_id] = set(self._decode([b, token_id, b, b, b])) <= {REPLACEMENT}
        return self._joins[token_id]

    def _probe(self, token_id: int) -> None:
        """Look for byte-level evidence between this token and the few kept before it."""
        if token_id in self._probes:
            return
        for other in self._probes:
            if self._absorbs(other, token_id) or self._absorbs(token_id, other):
                self._lossy = True
                return
        if len(self._probes) < _PROBES:
            self._probes.append(token_id)

    def _absorbs(self, first: int, byte: int) -> bool:
        """Whether `first`'s unfinished character takes in a lone byte and is still unfinished."""
        return self.alone(byte) == REPLACEMENT and self._decode([first, byte]) == self.alone(first)

    def alone(self, token_id: int) -> str:
        """The token decoded on its own (cached: streams ask about the same tokens again and again)."""
        if token_id not in self._alone:
            self._alone[token_id] = self._decode([token_id])
        return self._alone[token_id]

    def run_start(self, ids: list[int]) -> int:
        """Index of the first token of the trailing run of possible byte pieces (len(ids) if none)."""
        start = len(ids)
        while start > 0 and self.joins(ids[start - 1]):
            start -= 1
        return start


class TextStream:
    """Turn generated token ids into text as they arrive: push() returns only text that is certain.

    The pieces returned by push() and finish() join to exactly `decode(all ids)`. Text is held back
    while a character is unfinished (trailing U+FFFD), while a run of byte-fallback pieces is open
    (a later invalid byte would turn the whole run into U+FFFD), and from a space or apostrophe among
    the last few characters (clean_up_tokenization may still rewrite it). Each push decodes a window
    of about `_MAX_WINDOW` tokens, never the whole text: it grows past that only while no safe cut
    exists, chiefly while a run of byte pieces is open (the run must be decoded whole).
    """

    def __init__(self, decode: Callable[..., str], skip_special_tokens: bool = False) -> None:
        """`decode(ids)` gives text; with skip_special_tokens it is called with skip_special_tokens=True."""
        self._decode: Decode = partial(decode, skip_special_tokens=True) if skip_special_tokens else decode
        self._runs = _ByteRuns(self._decode)
        self._ids: list[int] = []  # the window: the latest tokens, the oldest of them already emitted
        self._emitted = 0  # characters of decode(self._ids) already returned

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text that has become certain (often "", never U+FFFD early)."""
        self._ids.append(token_id)
        text = self._decode(self._ids)
        certain = self._certain(text)
        new = text[self._emitted : certain] if certain > self._emitted else ""
        self._emitted = max(self._emitted, certain)
        if len(self._ids) > _MAX_WINDOW:
            self._slide(text)
        return new

    def finish(self) -> str:
        """Everything still held back: the sequence has ended, so nothing can change it any more."""
        text = self._decode(self._ids)
        rest = text[self._emitted :]
        self._emitted = max(self._emitted, len(text))
        return rest

    def _certain(self, text: str) -> int:
        """How many characters of the window's text no later token can change."""
        end = len(text.rstrip(REPLACEMENT))  # an unfinished character (byte-level BPE)
        run = self._runs.run_start(self._ids)
        if run < len(self._ids):  # an open run of byte pieces: hold all of it
            end = min(end, len(commonprefix([self._decode(self._ids[:run]), text])))
        return min(end, _tidy_safe(text), _tidy_safe(text[:end]))

    def _slide(self, text: str) -> None:
        """Forget the oldest tokens, but only at a cut that leaves the window's text unchanged.

        A cut is good when it splits no byte run or character, the shorter window decodes to a suffix
        of the longer one, and it keeps at least one emitted character, so that whatever the decoder
        does to a window's first token (strip its space, keep its "##") stays in emitted text.
        """
        cuts = (c for c in range(len(self._ids) - _KEEP, 0, -1) if not self._runs.joins(self._ids[c - 1]))
        for cut in islice(cuts, _CUT_TRIES):
            rest = self._decode(self._ids[cut:])
            dropped = len(text) - len(rest)
            if text.endswith(rest) and self._emitted - dropped >= 1 and not rest.startswith(REPLACEMENT):
                self._ids = self._ids[cut:]
                self._emitted -= dropped
                return


def _tidy_safe(text: str) -> int:
    """Where text that clean_up_tokenization might still rewrite begins (len(text) if nowhere).

    It joins " ." " ," " ' " " n't" " 's" and the like; checked exhaustively over short strings, later
    characters never change more than the text from a space or ' among the last `_TIDY_CHARS`.
    """
    start = max(0, len(text) - _TIDY_CHARS)
    found = [i for i in (text.find(" ", start), text.find("'", start)) if i >= 0]
    return min(found, default=len(text))


class _StopStrings:
    """The stop check: has a stop string appeared in the generated text since the previous token?

    Called after every new token (as the search loops do), so an occurrence must overlap what the
    newest token changed. Only a window of recent tokens is decoded, grown until its text covers the
    longest stop string before that change, past the part of the window that may decode differently
    from the whole text (a split character or byte run, the first token's stripped space or "##").
    """

    def __init__(self, decode: Decode, stops: tuple[str, ...]) -> None:
        self._decode = decode
        self._stops = stops
        self._longest = max(len(s) for s in stops)
        self._runs = _ByteRuns(decode)

    def __call__(self, ids: list[int]) -> bool:
        width = min(len(ids), _STOP_WINDOW)
        while width > 0:
            while width < len(ids) and self._runs.joins(ids[-width - 1]):
                width += 1  # never split a run of byte pieces
            window = ids[-width:]
            text = self._decode(window)
            changed = len(commonprefix([self._decode(window[:-1]), text]))
            start = max(0, changed - (self._longest - 1))
            if width == len(ids) or self._trusted(window, text, start):
                return any(s in text[start:] for s in self._stops)
            width = min(len(ids), 2 * width)
        return False

    def _trusted(self, window: list[int], text: str, start: int) -> bool:
        """Whether the window's text from `start` on is what the whole sequence decodes to there."""
        guard = len(self._runs.alone(window[0])) + _STOP_GUARD
        return start >= guard and not text.startswith(REPLACEMENT)


def stop_check(decode: Decode, stops: Iterable[str]) -> StopCheck | None:
    """A check for the search loops that stops a row once its generated text contains a stop string.

    Empty stop strings are ignored (they would stop before the first token); None when none remain.
    Only generated ids are passed in, so a stop string in the prompt never counts.
    """
    wanted = tuple(dict.fromkeys(s for s in stops if s))
    return _StopStrings(decode, wanted) if wanted else None


def truncate_at_stop(text: str, stops: Iterable[str]) -> str:
    """Cut text right after the stop string that ends first, keeping it (as transformers' stop_strings do).

    Ending first, not starting first: that is the token at which generation stopped.
    """
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text
