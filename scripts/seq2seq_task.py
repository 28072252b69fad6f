"""The task `weights/tiny-seq2seq` is trained on: English number words and spelled-out dates to digits.

    "three hundred and forty-two"   -> "342"
    "seven thousand and twelve"     -> "7012"
    "the fourth of July, 1999"      -> "1999-07-04"
    "March 9, 2024"                 -> "2024-03-09"

Why these two: both are deterministic, need no corpus, and make cross-attention readable. A number's
digits come out in the order its words come in, so each digit looks at its word ("forty" for the 4),
and a zero looks at the place word that implies it ("thousand and" before "twelve"); a date comes out
reordered (year first, though it is written last), so the alignment visibly crosses.

Held-out examples are defined by their answer, not drawn at random: `is_held_out(target)` puts about
5% of all numbers and dates aside, whatever their wording, so no phrasing of a held-out value is ever
trained on. `examples(n, seed, held_out=True)` draws only from those, for evaluation and the tests.
"""

from __future__ import annotations

import datetime
import random
import zlib
from collections.abc import Iterator

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ORDINAL_ONES = ("", *("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
                      "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth").split())
ORDINAL_TENS = {20: "twentieth", 30: "thirtieth"}
MONTHS = "January February March April May June July August September October November December".split()
PLACES = ("hundred", "thousand", "and", "the", "of")
MAX_NUMBER = 999_999
YEARS = (1000, 2999)
HELD_OUT_PERCENT = 5
NUMBER_SHARE = 0.6  # numbers are longer and harder than dates, so they get more of each batch
DATE_FORMATS = ("the {ord} of {month}, {year}", "{month} {day}, {year}", "{day} {month} {year}",
                "{month} the {ord}, {year}", "{month} {ord}, {year}")


def lexicon() -> list[str]:
    """Every word a source can contain, capitalised where it can start one: the tokenizer's vocabulary."""
    words = [*ONES, *TENS[2:], *ORDINAL_ONES[1:], *ORDINAL_TENS.values(), *MONTHS, *PLACES]
    starters = [w.capitalize() for w in (*ONES, *TENS[2:], "the")]
    return sorted(set(words + starters))


def below_hundred(n: int, hyphen: bool) -> str:
    if n < 20:
        return ONES[n]
    tens, ones = divmod(n, 10)
    return TENS[tens] if ones == 0 else TENS[tens] + ("-" if hyphen else " ") + ONES[ones]


def below_thousand(n: int, british: bool, hyphen: bool) -> str:
    """1..999; British English puts "and" between the hundreds and the rest."""
    hundreds, rest = divmod(n, 100)
    if hundreds == 0:
        return below_hundred(rest, hyphen)
    words = ONES[hundreds] + " hundred"
    if rest:
        words += (" and " if british else " ") + below_hundred(rest, hyphen)
    return words


def number_words(n: int, british: bool = True, hyphen: bool = True) -> str:
    """0..999,999 in words: "seven thousand and twelve" (British) or "seven thousand twelve"."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"{n} is outside 0..{MAX_NUMBER}")
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    if thousands == 0:
        return below_thousand(rest, british, hyphen)
    words = below_thousand(thousands, british, hyphen) + " thousand"
    if rest:
        joiner = " and " if british and rest < 100 else " "
        words += joiner + below_thousand(rest, british, hyphen)
    return words


def ordinal(day: int, hyphen: bool = True) -> str:
    """1..31 as an ordinal word: "fourth", "twenty-first", "thirtieth"."""
    if day < 20:
        return ORDINAL_ONES[day]
    tens, ones = divmod(day, 10)
    if ones == 0:
        return ORDINAL_TENS[day]
    return TENS[tens] + ("-" if hyphen else " ") + ORDINAL_ONES[ones]


def date_words(date: datetime.date, form: int, hyphen: bool = True) -> str:
    """The date in DATE_FORMATS[form]: "the fourth of July, 1999", "July 4, 1999", "4 July 1999", ..."""
    return DATE_FORMATS[form].format(ord=ordinal(date.day, hyphen), day=date.day,
                                     month=MONTHS[date.month - 1], year=date.year)


def is_held_out(target: str) -> bool:
    """Whether an answer belongs to the held-out set: a fixed hash of the answer, so every wording of
    it is held out together and the split never depends on a seed."""
    return zlib.crc32(target.encode()) % 100 < HELD_OUT_PERCENT


def random_number(rng: random.Random) -> int:
    """A number with a uniformly drawn count of digits, so "twelve" is as common as "612,408"."""
    digits = rng.randint(1, len(str(MAX_NUMBER)))
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def random_date(rng: random.Random) -> datetime.date:
    start = datetime.date(YEARS[0], 1, 1).toordinal()
    return datetime.date.fromordinal(rng.randint(start, datetime.date(YEARS[1], 12, 31).toordinal()))


def random_example(rng: random.Random) -> tuple[str, str]:
    """One (source, target) pair in a random wording; a capital first letter now and then."""
    hyphen = rng.random() < 0.8
    if rng.random() < NUMBER_SHARE:
        n = random_number(rng)
        source, target = number_words(n, british=rng.random() < 0.5, hyphen=hyphen), str(n)
    else:
        date = random_date(rng)
        source, target = date_words(date, rng.randrange(len(DATE_FORMATS)), hyphen), date.isoformat()
    if rng.random() < 0.15:
        source = source[0].upper() + source[1:]
    return source, target


def stream(seed: int, held_out: bool = False) -> Iterator[tuple[str, str]]:
    """Endless seeded examples, only from the training side of the split (or only the held-out side)."""
    rng = random.Random(seed)
    while True:
        source, target = random_example(rng)
        if is_held_out(target) == held_out:
            yield source, target


def examples(n: int, seed: int, held_out: bool = False) -> list[tuple[str, str]]:
    """`n` distinct examples from one side of the split (distinct sources, so none is counted twice)."""
    seen: dict[str, str] = {}
    for source, target in stream(seed, held_out):
        seen.setdefault(source, target)
        if len(seen) == n:
            break
    return list(seen.items())
