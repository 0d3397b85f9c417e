"""A licence-clean English text corpus for distillation (text only, no audio).

`data/text/sentences.txt` is built by `scripts/make_starter_data.py` from three sources, all written for
this project (CC0):

* ``data/text/handwritten.txt``: the first sentences written by hand (statements, questions, exclamations,
  lists, numbers, dates, times, prices, short and long);
* ``data/text/written.txt``: a larger, more varied set written for the project in batches by genre
  (narrative, dialogue, questions, instructions and recipes, news and sports commentary, places and
  weather, science and technology, history, letters and messages, jokes, lists, numbers and abbreviations,
  long sentences with parentheses, dashes and semicolons);
* `generate_sentences`: a small deterministic generator that fills hand-written templates from
  hand-written word lists, for volume and variety.

`load_written` reads the two written files (`WRITTEN_FILES`, in that order); `build_corpus` merges them
with generated sentences without duplicates and shuffles everything with a fixed seed (so any prefix is a
varied sample); `load_sentences` reads the result back, one sentence per line. The held-out evaluation
sentences (``data/text/heldout.txt``) are of another origin and are never part of the corpus.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path

MAX_CHARS = 300  # about 400 phonemes: safely under Kokoro's 510
WRITTEN_FILES = ("handwritten.txt", "written.txt")  # in data/text/, read in this order by `load_written`

# ------------------------------------------------------------------------------------ word lists

_PEOPLE = [
    "my neighbour", "the old fisherman", "our teacher", "my little sister", "the postman", "a tall stranger",
    "the baker", "my grandfather", "the new manager", "Aunt Margaret", "Tom", "Priya", "Mr. Lewis",
    "Dr. Hughes", "the twins", "Olivia", "Samuel", "the night porter", "a young student", "the mayor",
    "Grace", "Omar", "my cousin", "the lighthouse keeper", "the school caretaker", "Mrs. Chen", "Daniel",
    "the shopkeeper", "Isabel", "Kwame",
]  # fmt: skip
_NAMES = [
    "Anna", "Ben", "Chloe", "David", "Esme", "Felix", "Hannah", "Ivan", "Jasmine", "Leo", "Maya", "Noah",
]  # fmt: skip
_THINGS = [
    "an old camera", "a wooden box", "a silver spoon", "a red bicycle", "a pair of muddy boots", "a map of the city",
    "a jar of honey", "a broken clock", "a letter from Canada", "a bag of apples", "a green umbrella",
    "a photograph of the harbour", "a small brass key", "a basket of eggs", "a woollen hat", "a book about whales",
    "a violin case", "a box of old records", "a paper kite", "a chipped teapot", "a bunch of daffodils",
    "a toy sailing boat", "a heavy suitcase", "a packet of seeds", "a leather notebook", "a bottle of lemonade",
]  # fmt: skip
_PORTABLE_VERBS = [  # (past, base): verbs that suit every item in _THINGS
    ("found", "find"), ("lost", "lose"), ("bought", "buy"), ("sold", "sell"), ("carried", "carry"),
    ("borrowed", "borrow"), ("hid", "hide"), ("forgot", "forget"), ("noticed", "notice"),
    ("wrapped", "wrap"), ("photographed", "photograph"), ("dropped", "drop"), ("left", "leave"),
]  # fmt: skip
_PARTICIPLES = {"hid": "hidden", "forgot": "forgotten"}  # where the past participle differs
_PLACES = [
    "in the attic", "at the market", "behind the shed", "on the train", "near the harbour", "under the bed",
    "by the river", "in the village hall", "at the bus station", "on the kitchen table", "in the garden",
    "outside the library", "at the top of the hill", "in a second-hand shop", "on the beach", "in the car park",
    "beside the old well", "at the back of the cupboard",
]  # fmt: skip
_TIMES = [
    "last Thursday", "yesterday morning", "this afternoon", "late last night", "just before midnight",
    "after lunch", "early on Sunday", "a few weeks ago", "on the first day of spring", "at dawn",
    "during the storm", "on the way home", "before breakfast", "last summer", "on Christmas Eve",
]  # fmt: skip
_ADJECTIVES = [
    "beautiful", "strange", "lovely", "terrible", "wonderful", "peculiar", "gloomy", "splendid", "quiet",
    "noisy", "curious", "magnificent", "dreadful", "charming", "ridiculous",
]  # fmt: skip
_NOUNS = [
    "morning", "idea", "view", "surprise", "garden", "story", "evening", "voice", "hat", "journey", "song",
    "painting", "little house", "day", "mess",
]  # fmt: skip
_LIST_ITEMS = [
    "bread", "cheese", "apples", "candles", "string", "a hammer", "two lemons", "some nails", "a torch",
    "blue paint", "envelopes", "a loaf of rye bread", "oranges", "matches", "a tin of beans", "writing paper",
    "fresh basil", "a bag of flour", "batteries", "soap", "a ball of wool", "coffee", "rice", "onions",
]  # fmt: skip
_COUNTABLES = [
    ("boats", "harbour"), ("books", "library"), ("sheep", "field"), ("chairs", "hall"), ("trees", "park"),
    ("windows", "castle"), ("bicycles", "yard"), ("pupils", "school"), ("houses", "village"),
    ("stars", "photograph"), ("bees", "hive"), ("lamps", "street"),
]  # fmt: skip
_PRICED = [
    "a cup of coffee", "the ferry ticket", "a second-hand bicycle", "the new kettle", "a bunch of flowers",
    "the concert ticket", "a loaf of bread", "the taxi ride", "a pair of gloves", "the repair",
]  # fmt: skip
_EVENTS = [
    "The summer fair", "The annual meeting", "The school concert", "The boat race", "The charity walk",
    "The book sale", "The village quiz", "The wedding", "The opening ceremony", "The final exam",
    "The harvest supper", "The chess tournament",
]  # fmt: skip
_VEHICLES = ["train", "ferry", "bus", "coach", "night train", "first tram", "last boat", "flight"]
_DESTINATIONS = [
    "Manchester", "Dublin", "the coast", "the airport", "Oxford", "the city centre", "Aberdeen", "Leeds",
]  # fmt: skip
_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_CLAUSES = [  # full clauses, past tense, no final punctuation
    "the wind dropped", "the lights went out", "the kettle boiled", "the dog started barking",
    "a bell rang somewhere in the town", "the rain turned to snow", "the last guest arrived",
    "the river burst its banks", "the shop closed early", "the music stopped", "the clouds parted",
    "nobody said a word", "the phone rang twice", "the bus was late again", "the garden filled with birds",
    "the road was closed", "the tide came in", "the bread was ready", "the children fell asleep",
    "the fog rolled in from the sea",
]  # fmt: skip
_QUOTES = [
    "We should leave before it gets dark", "I have never been so tired", "Nobody told me it would be this cold",
    "Let us try one more time", "It is exactly where I left it", "This is the best soup in the world",
    "I think it is going to rain", "You will not believe what happened", "Keep going, we are nearly there",
    "That was the strangest thing I have ever seen",
]  # fmt: skip
_QUESTION_QUOTES = [
    "Are we nearly there", "Have you seen my glasses", "Is it always this windy here", "Who left the door open",
    "Can anybody hear that noise", "Why is the shop closed today", "Did you remember the tickets",
]  # fmt: skip
_SAID = ["said", "whispered", "shouted", "muttered", "announced", "replied", "laughed", "sighed"]

# ----------------------------------------------------------------------------------- number helpers


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(r: random.Random) -> str:
    day, month, year = r.randint(1, 28), r.choice(_MONTHS), r.randint(1850, 2030)
    style = r.randrange(4)
    if style == 0:
        return f"{day} {month} {year}"
    if style == 1:
        return f"the {_ordinal(day)} of {month}"
    if style == 2:
        return f"{month} {day}, {year}"
    return f"{r.choice(_WEEKDAYS)} the {_ordinal(day)}"


def _clock(r: random.Random) -> str:
    h, m = r.randint(1, 12), r.choice([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55])
    style = r.randrange(4)
    if style == 0:
        return f"{h}:{m:02d}"
    if style == 1:
        return f"{h}:{m:02d} {r.choice(['a.m.', 'p.m.'])}"
    if style == 2:
        return {0: f"{h} o'clock", 15: f"a quarter past {h}", 30: f"half past {h}"}.get(
            m, f"{m} minutes past {h}"
        )
    return f"{r.randint(13, 23)}:{m:02d}"  # 24-hour; no leading zero ("07:00" reads as "zero seven")


def _price(r: random.Random) -> str:
    symbol = r.choice(["$", "£", "€"])
    if r.random() < 0.4:
        return f"{symbol}{r.randint(1, 250)}"
    return f"{symbol}{r.randint(0, 99)}.{r.randint(1, 99):02d}"


def _count(r: random.Random) -> str:
    n = r.choice([r.randint(2, 19), r.randint(20, 999), r.randint(1000, 99999)])
    return f"{n:,}" if n >= 1000 else str(n) if r.random() < 0.6 else _number_words(n)


_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number_words(n: int) -> str:
    """0..999 in words (British style: 'one hundred and five')."""
    if n < 20:
        return _UNITS[n]
    if n < 100:
        return _TENS[n // 10] + (f"-{_UNITS[n % 10]}" if n % 10 else "")
    rest = n % 100
    return f"{_UNITS[n // 100]} hundred" + (f" and {_number_words(rest)}" if rest else "")


def _join_list(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


# -------------------------------------------------------------------------------------- templates


def _statement(r):
    past, _ = r.choice(_PORTABLE_VERBS)
    return f"{_cap(r.choice(_PEOPLE))} {past} {r.choice(_THINGS)} {r.choice(_PLACES)} {r.choice(_TIMES)}."


def _question(r):
    past, base = r.choice(_PORTABLE_VERBS)
    who, what, where = r.choice(_PEOPLE), r.choice(_THINGS), r.choice(_PLACES)
    return r.choice(
        [
            f"Did {who} really {base} {what} {where}?",
            f"Why did {who} {base} {what} {where}?",
            f"Where did {who} {base} {what}?",
            f"Who {past} {what} {where}?",
            f"When did {who} last see {what}?",
            f"Is it true that {who} {past} {what} {r.choice(_TIMES)}?",
        ]
    )


def _exclamation(r):
    adj, noun = r.choice(_ADJECTIVES), r.choice(_NOUNS)
    article = "an" if adj[0] in "aeiou" else "a"
    return r.choice(
        [
            f"What {article} {adj} {noun}!",
            f"How {adj} that {noun} was!",
            f"Oh, what {article} {adj} {noun} it has been!",
            f"Look at that {adj} {noun}!",
        ]
    )


def _shopping_list(r):
    items = r.sample(_LIST_ITEMS, r.randint(3, 6))
    return r.choice(
        [
            f"{_cap(r.choice(_PEOPLE))} asked for {_join_list(items)}.",
            f"Please bring {_join_list(items)}.",
            f"We still need {_join_list(items)}.",
            f"Did anyone remember the {items[0].split()[-1]}, or shall I buy {_join_list(items[1:])} as well?",
        ]
    )


def _numbers(r):
    plural, place = r.choice(_COUNTABLES)
    return r.choice(
        [
            f"There were {_count(r)} {plural} in the {place}.",
            f"{_cap(r.choice(_PRICED))} cost {_price(r)}.",
            f"How many {plural} are there in the {place}?",
            f"About {r.randint(2, 98)}% of the {plural} in the {place} are new.",
            f"The walk is {r.randint(2, 30)}.{r.randint(1, 9)} kilometres long and takes {_number_words(r.randint(2, 9))} hours.",
            f"Room {r.randint(1, 9)}{r.randint(0, 3)}{r.randint(1, 9)} is on floor {r.randint(1, 12)}.",
        ]
    )


def _dates(r):
    event = r.choice(_EVENTS)
    return r.choice(
        [
            f"{event} will take place on {_date(r)}.",
            f"{event} was held on {_date(r)} at {_clock(r)}.",
            f"Is {event.lower()} really on {_date(r)}?",
            "{} has been moved from {} to {}.".format(event, *r.sample(_WEEKDAYS, 2)),
            f"In {r.randint(1700, 2020)}, {event.lower()} was cancelled for the first time.",
        ]
    )


def _times(r):
    v, dest = r.choice(_VEHICLES), r.choice(_DESTINATIONS)
    return r.choice(
        [
            f"The {v} to {dest} leaves at {_clock(r)}.",
            f"What time does the {v} to {dest} arrive?",
            f"The {v} from {dest} is running {r.randint(5, 55)} minutes late.",
            f"If we hurry, we can still catch the {v} at {_clock(r)}!",
        ]
    )


def _compound(r):
    a, b = r.sample(_CLAUSES, 2)
    past, _ = r.choice(_PORTABLE_VERBS)
    who, what, where = r.choice(_PEOPLE), r.choice(_THINGS), r.choice(_PLACES)
    return r.choice(
        [
            f"Just as {a}, {who} {past} {what} {where}.",
            f"{_cap(a)}, and {b}.",
            f"{_cap(a)}, but {who} {past} {what} {where} anyway.",
            f"Although {a}, {b}, and by {_clock(r)} everyone had gone home.",
            f"{_cap(who)} {past} {what} {where} {r.choice(_TIMES)}, because {a} and {b}.",
            f"Nobody noticed when {a}, and nobody was surprised when {b} {r.choice(_TIMES)}.",
        ]
    )


def _conditional(r):
    past, base = r.choice(_PORTABLE_VERBS)
    who, what = r.choice(_PEOPLE), r.choice(_THINGS)
    return r.choice(
        [
            f"If {who} had not {_PARTICIPLES.get(past, past)} {what}, none of this would have happened.",
            f"If it rains on {r.choice(_WEEKDAYS)}, we will {base} {what} {r.choice(_PLACES)} instead.",
            f"Ever since {r.choice(_CLAUSES)}, {who} refused to {base} {what}.",
        ]
    )


def _speech(r):
    verb, name = r.choice(_SAID), r.choice(_NAMES)
    if r.random() < 0.3:
        quote, end = r.choice(_QUESTION_QUOTES), "?"
        verb = r.choice(["asked", "wondered", "called", "whispered"])
    else:
        quote, end = r.choice(_QUOTES), r.choice([",", "!"])
    inner_end = "." if end == "," else end
    return r.choice([f'"{quote}{end}" {verb} {name}.', f'{name} {verb}, "{quote}{inner_end}"'])


def _long(r):
    past, _ = r.choice(_PORTABLE_VERBS)
    past2, _ = r.choice(_PORTABLE_VERBS)
    a, b = r.sample(_CLAUSES, 2)
    who, who2 = r.sample(_PEOPLE, 2)
    return (
        f"{_cap(r.choice(_TIMES))}, {who} {past} {r.choice(_THINGS)} {r.choice(_PLACES)}; meanwhile {a}, "
        f"{b} and, to everyone's surprise, {who2} {past2} {r.choice(_THINGS)} {r.choice(_PLACES)}."
    )


_TEMPLATES = [
    _statement, _question, _exclamation, _shopping_list, _numbers, _dates, _times, _compound, _conditional,
    _speech, _long,
]  # fmt: skip


def generate_sentences(n: int, seed: int = 0, exclude: Iterable[str] = ()) -> list[str]:
    """`n` distinct sentences from the templates, deterministic for a given seed.

    Sentences in `exclude` (compared case- and space-insensitively) are never returned.
    """
    r = random.Random(seed)
    seen = {_key(s) for s in exclude}
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"only {len(out)} distinct sentences after {attempts} attempts")
        s = _TEMPLATES[len(out) % len(_TEMPLATES)](r)  # round-robin over the templates
        s = re.sub(r"\s+", " ", s).strip()
        if len(s) <= MAX_CHARS and _key(s) not in seen:
            seen.add(_key(s))
            out.append(s)
    return out


# --------------------------------------------------------------------------------- corpus building


def _key(s: str) -> str:
    return " ".join(s.lower().split())


def load_sentences(path: str | Path) -> list[str]:
    """One sentence per line; blank lines and surrounding whitespace are ignored."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def check_sentences(sentences: Iterable[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Problems found (empty, too long, line breaks, duplicates); an empty list means the corpus is clean."""
    problems, seen = [], {}
    for i, s in enumerate(sentences):
        if not s.strip():
            problems.append(f"line {i + 1}: empty")
        if len(s) > max_chars:
            problems.append(f"line {i + 1}: {len(s)} characters (max {max_chars})")
        if "\n" in s or "\r" in s:
            problems.append(f"line {i + 1}: contains a line break")
        k = _key(s)
        if k in seen:
            problems.append(f"line {i + 1}: duplicate of line {seen[k] + 1}")
        seen.setdefault(k, i)
    return problems


def load_written(text_dir: str | Path) -> list[str]:
    """The written sentences of `WRITTEN_FILES` in `text_dir`, file by file, in file order."""
    return [s for name in WRITTEN_FILES for s in load_sentences(Path(text_dir) / name)]


def build_corpus(written: Iterable[str], n_generated: int, seed: int = 0) -> list[str]:
    """Written sentences (deduplicated) plus `n_generated` template sentences, shuffled with `seed`."""
    hand: list[str] = []
    seen = set()
    for s in written:
        s = " ".join(s.split())
        if s and _key(s) not in seen:
            seen.add(_key(s))
            hand.append(s)
    generated = generate_sentences(n_generated, seed=seed, exclude=hand)
    sentences = hand + generated
    random.Random(seed).shuffle(sentences)
    problems = check_sentences(sentences)
    if problems:
        raise ValueError("corpus problems: " + "; ".join(problems[:10]))
    return sentences


def corpus_stats(sentences: list[str]) -> dict:
    """Counts for a quick look: sentence types by final mark, digits, length range."""
    lengths = [len(s) for s in sentences]
    return {
        "sentences": len(sentences),
        "questions": sum(s.rstrip('"').endswith("?") for s in sentences),
        "exclamations": sum(s.rstrip('"').endswith("!") for s in sentences),
        "with_digits": sum(any(c.isdigit() for c in s) for s in sentences),
        "min_chars": min(lengths, default=0),
        "max_chars": max(lengths, default=0),
        "mean_chars": round(sum(lengths) / max(1, len(lengths)), 1),
    }
