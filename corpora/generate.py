#!/usr/bin/env python3
"""Generate charlm's own small corpora, deterministically (standard library only).

    python3 corpora/generate.py NAME [--size BYTES] [--seed N] [-o FILE] [--stats]
    python3 corpora/generate.py all      # rewrite the committed files next to this script
    python3 corpora/generate.py --check  # regenerate them in memory, compare byte for byte

NAME is brackets, counting or unicode-sampler. Without -o the text goes to stdout.
--stats prints, on stderr, what an ideal model's loss on the text is (see README.md).

Randomness comes only from random.Random(seed).random(), whose sequence for an integer
seed is stable across Python 3 versions; every choice is made from it by an explicit
cumulative table, so a given (name, size, seed) always gives the same bytes.
"""
import argparse
import math
import random
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pick(rng, probs):
    """Index i drawn with probability probs[i] (one rng.random() call)."""
    u, acc = rng.random(), 0.0
    for i, p in enumerate(probs):
        acc += p
        if u < acc:
            return i
    return len(probs) - 1


# --- brackets: a Dyck-like language whose closers need a stack ------------------------

OPEN, CLOSE = "([{<", ")]}>"
WORDS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen",
         "ibis", "jay", "kea", "lynx", "mole", "newt", "owl", "pig"]  # distinct first letters
P_GROUP = [0.6, 0.45, 0.35, 0.25, 0.15]  # P(item is a group | depth); none deeper than 5
P_CLOSE = 0.3   # P(close the group | after an item, inside a group)
P_EOL = 0.3     # P(end the line | after an item, at depth 0)
MAX_COL = 160   # from this column on: no new groups, close everything, end the line


def brackets_line(rng):
    """One line, with -log2 p of every character under the generating process."""
    chars, bits, closers = [], [], []  # closers: (distance to its opener, bits)
    stack = []                         # (kind, column of the opener)

    def emit(ch, p):
        chars.append(ch)
        bits.append(-math.log2(p))

    def start_item():
        while True:
            depth, col = len(stack), len(chars)
            pg = P_GROUP[depth] if depth < len(P_GROUP) and col < MAX_COL else 0.0
            probs = [pg / 4] * 4 + [(1 - pg) / len(WORDS)] * len(WORDS)
            i = pick(rng, probs)
            if i < 4:  # an opener; a group holds at least one item, so start one now
                stack.append((i, col))
                emit(OPEN[i], probs[i])
                continue
            word = WORDS[i - 4]
            emit(word[0], probs[i])
            for ch in word[1:]:  # the first letter fixes the word
                emit(ch, 1.0)
            return

    start_item()
    while True:  # after an item: another item, a closer, or the end of the line
        forced = len(chars) >= MAX_COL
        p_end = 1.0 if forced else (P_CLOSE if stack else P_EOL)
        if pick(rng, [p_end, 1 - p_end]) == 0:
            if not stack:
                emit("\n", p_end)
                return "".join(chars), bits, closers
            kind, col = stack.pop()
            emit(CLOSE[kind], p_end)
            closers.append((len(chars) - 1 - col, bits[-1]))
        else:
            emit(" ", 1 - p_end)
            start_item()


def brackets(size, seed):
    rng = random.Random(seed)
    out, total_bits, closers = [], 0.0, []
    n = 0
    while True:
        line, bits, cl = brackets_line(rng)
        if n + len(line) > size:
            break
        out.append(line)
        n += len(line)
        total_bits += sum(bits)
        closers += cl
    text = "".join(out)
    dist = sorted(d for d, _ in closers)
    stats = {
        "bytes": len(text.encode()),
        "lines": len(out),
        "ideal_bits_per_char": total_bits / len(text),
        "closers": len(closers),
        "closer_share": len(closers) / len(text),
        "closer_distance_mean": sum(dist) / len(dist),
        "closer_distance_median": dist[len(dist) // 2],
        "closer_distance_max": dist[-1],
        "closers_at_least_16_back": sum(d >= 16 for d in dist) / len(dist),
        "closers_at_least_32_back": sum(d >= 32 for d in dist) / len(dist),
        "ideal_bits_per_closer": sum(b for _, b in closers) / len(closers),
        "ideal_bits_which_closer": 0.0,
        "stackless_bits_which_closer": math.log2(4),
        "stackless_extra_bits_per_char": math.log2(4) * len(closers) / len(text),
    }
    return text, stats


# --- counting: "17:.................:17" ----------------------------------------------

COUNT_MAX = 64  # n is uniform on 1..COUNT_MAX, so each line carries log2(64) = 6 bits


def counting(size, seed):
    rng = random.Random(seed)
    out, n = [], 0
    while True:
        k = 1 + pick(rng, [1 / COUNT_MAX] * COUNT_MAX)
        line = f"{k}:{'.' * k}:{k}\n"
        if n + len(line) > size:
            break
        out.append(line)
        n += len(line)
    text = "".join(out)
    bits = math.log2(COUNT_MAX)
    mean_len = sum(2 * len(str(k)) + k + 3 for k in range(1, COUNT_MAX + 1)) / COUNT_MAX
    stats = {
        "bytes": len(text.encode()),
        "lines": len(out),
        "ideal_bits_per_line": bits,
        "ideal_bits_per_char": bits * len(out) / len(text),
        "entropy_rate_bits_per_char": bits / mean_len,
        "deterministic_after_first_colon": True,
    }
    return text, stats


# --- unicode-sampler: the project's own multilingual text ------------------------------

ZWJ, VS16, ZWNJ, NBSP, ZWSP, SHY, WJ = "\u200d", "\ufe0f", "\u200c", "\u00a0", "\u200b", "\u00ad", "\u2060"


def tones(base):
    return " ".join(base + chr(0x1F3FB + i) for i in range(5))


LATIN = "Zoë's naïve café in Zürich serves crème brûlée, jalapeño soup and smørrebrød."
VIET = "Tiếng Việt có nhiều dấu chồng lên nhau: ặ ẫ ợ ữ ỗ."
HANGUL = "한글은 세종대왕이 만들었습니다."
EMOJI_ZWJ = " ".join([
    "\U0001F469" + ZWJ + "\U0001F469" + ZWJ + "\U0001F467" + ZWJ + "\U0001F466",  # family
    "\U0001F468\U0001F3FE" + ZWJ + "\U0001F4BB",                                  # technologist
    "\U0001F3F3" + VS16 + ZWJ + "\U0001F308",                                     # rainbow flag
    "\u2764" + VS16, "1" + VS16 + "\u20e3",                                       # heart, keycap
])
FLAGS = " ".join(["\U0001F1E9\U0001F1EA", "\U0001F1EF\U0001F1F5", "\U0001F1E7\U0001F1F7",
                  "\U0001F1FA\U0001F1E6", "\U0001F3F4\U000E0067\U000E0062\U000E0073"
                  "\U000E0063\U000E0074\U000E007F"])  # DE JP BR UA, Scotland (tag sequence)

SAMPLER = [
    ("charlm unicode sampler: the project's own text, for tokenizer and model tests.", "\n"),
    ("Each line names its script. Lines marked NFD repeat the line above, decomposed.", "\n"),
    ("", "\n"),
    ("ASCII: 0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ and a\ttab.", "\n"),
    ("Latin NFC: " + unicodedata.normalize("NFC", LATIN), "\n"),
    ("Latin NFD: " + unicodedata.normalize("NFD", LATIN), "\n"),
    ("Latin extended: Dvořák, Łódź, Ærøskøbing, Ōsaka, İstanbul, Straße, GROẞE.", "\n"),
    ("Vietnamese NFC: " + unicodedata.normalize("NFC", VIET), "\n"),
    ("Vietnamese NFD: " + unicodedata.normalize("NFD", VIET), "\n"),
    ("Greek: Η αλεπού πηδά πάνω από τον φράχτη και γελά.", "\n"),
    ("Greek polytonic: Ἀρχὴ ἥμισυ παντός.", "\n"),
    ("Cyrillic (Russian): Ёжик видит щуку в реке, а щука видит ёжика.", "\n"),
    ("Cyrillic (Ukrainian): На ґанку сидить їжак, а поруч єнот.", "\n"),
    ("Georgian: ქართული დამწერლობა.  Armenian: Հայերեն գրեր.", "\n"),
    ("Arabic: القراءة غذاء العقل، والكتابة ذاكرته.", "\n"),
    ("Arabic-Indic digits: ٠١٢٣٤٥٦٧٨٩  Persian: ۰۱۲۳۴۵۶۷۸۹ and می" + ZWNJ + "خواهم (with ZWNJ).", "\n"),
    ("Hebrew: הספר מונח על השולחן.  With points: שָׁלוֹם.", "\n"),
    ("Mixed direction: the word \"שלום\" means peace, and so does \"سلام\".", "\n"),
    ("Devanagari (Hindi): हिन्दी में संयुक्ताक्षर होते हैं, जैसे क्ष, त्र और ज्ञ।", "\n"),
    ("Tamil: தமிழ் எழுத்து.", "\n"),
    ("Thai: ภาษาไทยเขียนโดยไม่เว้นวรรคระหว่างคำ", "\n"),
    ("Chinese (simplified): 学而时习之，不亦说乎？", "\n"),
    ("Chinese (traditional): 學而時習之，不亦說乎？", "\n"),
    ("Japanese: 日本語は漢字とひらがなとカタカナで書きます。", "\n"),
    ("Hangul NFC: " + unicodedata.normalize("NFC", HANGUL), "\n"),
    ("Hangul NFD: " + unicodedata.normalize("NFD", HANGUL), "\n"),
    ("Fullwidth: ＡＢＣ１２３！  Halfwidth katakana: ｶﾀｶﾅ", "\n"),
    ("Emoji: \U0001F600 \U0001F44D " + tones("\U0001F44B"), "\n"),
    ("Emoji ZWJ sequences: " + EMOJI_ZWJ, "\n"),
    ("Flags: " + FLAGS, "\n"),
    ("Astral: \U0001D518\U0001D52B\U0001D526\U0001D520\U0001D52C\U0001D521\U0001D522 "
     "\U0001D7D9\U0001D7DA\U0001D7DB \U0001D11E  Math: ∀x∈ℝ: x² ≥ 0, ∑ 1/n² = π²/6.", "\n"),
    ("Stacked marks: a\u0301\u0327\u0308 o\u0323\u0302\u0303 Z\u0351\u036b\u0343\u0359\u0324\u031e", "\n"),
    ("Invisible: no" + NBSP + "break, zero" + ZWSP + "width, soft" + SHY + "hyphen, word" + WJ + "joiner.", "\n"),
    ("CRLF: this line ends with a carriage return and a line feed.", "\r\n"),
    ("CRLF: Эта строка тоже.", "\r\n"),
    ("CRLF: この行も CRLF で終わります。", "\r\n"),
    ("The last line ends with a plain line feed.", "\n"),
]


def unicode_sampler(size=None, seed=None):
    text = "".join(line + eol for line, eol in SAMPLER)
    data = text.encode("utf-8")
    stats = {
        "bytes": len(data),
        "code_points": len(text),
        "lines": text.count("\n"),
        "crlf_lines": text.count("\r\n"),
        "non_ascii_code_points": sum(ord(c) > 127 for c in text),
        "astral_code_points": sum(ord(c) > 0xFFFF for c in text),
    }
    return text, stats


# --- command line ----------------------------------------------------------------------

CORPORA = {  # name: (function, default size, default seed, committed file)
    "brackets": (brackets, 100_000, 1, "brackets.txt"),
    "counting": (counting, 50_000, 1, "counting.txt"),
    "unicode-sampler": (unicode_sampler, None, None, "unicode-sampler.txt"),
}


def make(name, size=None, seed=None):
    fn, dsize, dseed, _ = CORPORA[name]
    return fn(dsize if size is None else size, dseed if seed is None else seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", nargs="?", choices=[*CORPORA, "all"])
    ap.add_argument("--size", type=int, help="at most this many bytes, in whole lines")
    ap.add_argument("--seed", type=int)
    ap.add_argument("-o", "--output", help="file to write (default: stdout)")
    ap.add_argument("--stats", action="store_true", help="print statistics on stderr")
    ap.add_argument("--check", action="store_true",
                    help="check that the committed files are reproduced byte for byte")
    a = ap.parse_args()

    if a.check or a.name == "all":
        bad = 0
        for name, (_, _, _, file) in CORPORA.items():
            data = make(name)[0].encode("utf-8")
            path = HERE / file
            if a.name == "all":
                path.write_bytes(data)
                print(path)
            elif not path.exists() or path.read_bytes() != data:
                print(f"generate.py: {file} differs from what the generator produces", file=sys.stderr)
                bad = 1
            else:
                print(f"ok {file}")
        return bad
    if a.name is None:
        ap.error("a corpus name, 'all' or --check is required")
    if a.name == "unicode-sampler" and (a.size is not None or a.seed is not None):
        print("generate.py: unicode-sampler is fixed text; --size and --seed are ignored", file=sys.stderr)
    if a.size is not None and a.size < 1:
        ap.error("--size must be positive")
    text, stats = make(a.name, a.size, a.seed)
    data = text.encode("utf-8")
    if a.output:
        Path(a.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    if a.stats:
        for key, value in stats.items():
            print(f"{key}: {round(value, 4) if isinstance(value, float) else value}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
