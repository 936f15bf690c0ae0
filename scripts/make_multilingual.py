#!/usr/bin/env python3
"""Build a multilingual benchmark corpus from text already on a Debian system (no internet).

Source: the gettext message catalogs (/usr/share/locale/<lang>/LC_MESSAGES/<domain>.mo) that
Debian packages ship with their translations: coreutils and dpkg (both Essential), libpam-runtime,
libglib2.0-data, libgtk2.0-common and iso-codes (country and language names). These are real,
human-translated sentences in many scripts. From each catalog the translated strings (msgstr)
are taken, sorted by msgid, so the output is deterministic for a given set of installed packages.

Coverage: Latin with diacritics (French, German, Spanish, Portuguese, Polish, Czech, Turkish,
Vietnamese), each written once in NFC and once in NFD; Greek; Cyrillic (Russian, Ukrainian,
Bulgarian); Arabic and Persian; Hebrew; Devanagari (Hindi), Bengali, Tamil; Thai; CJK (Japanese,
Simplified and Traditional Chinese); Hangul (Korean); and emoji (ZWJ families and professions,
skin tones, keycaps, flags built from ISO 3166 codes), named through Python's unicodedata and
inserted at positions drawn from a seeded RNG.

Each language contributes at most --per-language-bytes of UTF-8 (Latin languages half in NFC,
half in NFD), so that no script dominates.

Usage: scripts/make_multilingual.py OUTPUT [--per-language-bytes N] [--max-bytes N]
Prints the catalogs used, the size and the SHA-256 of the output.
"""
import argparse
import gettext
import hashlib
import os
import random
import sys
import unicodedata

LOCALE_DIR = "/usr/share/locale"
DOMAINS = ["coreutils", "dpkg", "Linux-PAM", "glib20", "gtk20", "iso_3166", "iso_639"]
LATIN = ["fr", "de", "es", "pt_BR", "pl", "cs", "tr", "vi"]
OTHERS = ["el", "ru", "uk", "bg", "ar", "fa", "he", "hi", "bn", "ta", "th", "ja", "zh_CN", "zh_TW", "ko"]

EMOJI_NAMES = [
    "GRINNING FACE", "FACE WITH TEARS OF JOY", "HEAVY BLACK HEART", "THUMBS UP SIGN", "SPARKLES", "ROCKET",
    "GLOBE WITH MERIDIANS", "PARTY POPPER", "CAT FACE", "SNOWMAN", "HOT BEVERAGE", "BOOKS",
]
SKIN_TONES = ["EMOJI MODIFIER FITZPATRICK TYPE-1-2", "EMOJI MODIFIER FITZPATRICK TYPE-4",
              "EMOJI MODIFIER FITZPATRICK TYPE-6"]
ZWJ = "\u200d"
FLAG_CODES = ["FR", "DE", "JP", "KR", "IN", "BR", "UA", "GR", "IL", "EG", "TH", "VN", "CN", "US"]


def emoji_pool():
    """Single emoji, modifier sequences, ZWJ sequences, keycaps and flags."""
    pool = [unicodedata.lookup(name) for name in EMOJI_NAMES]
    thumbs = unicodedata.lookup("THUMBS UP SIGN")
    pool += [thumbs + unicodedata.lookup(tone) for tone in SKIN_TONES]
    man, woman, girl, boy = (unicodedata.lookup(n) for n in ("MAN", "WOMAN", "GIRL", "BOY"))
    laptop = unicodedata.lookup("PERSONAL COMPUTER")
    pool += [man + ZWJ + woman + ZWJ + girl + ZWJ + boy,
             woman + unicodedata.lookup(SKIN_TONES[1]) + ZWJ + laptop,
             unicodedata.lookup("WAVING WHITE FLAG") + "\ufe0f" + ZWJ + unicodedata.lookup("RAINBOW")]
    pool += [digit + "\ufe0f\u20e3" for digit in "0123456789#"]
    base = ord(unicodedata.lookup("REGIONAL INDICATOR SYMBOL LETTER A"))
    pool += ["".join(chr(base + ord(c) - ord("A")) for c in code) for code in FLAG_CODES]
    return pool


def messages(lang):
    """Translated strings of every available catalog of `lang`, sorted by message id."""
    found, texts = [], []
    for domain in DOMAINS:
        path = os.path.join(LOCALE_DIR, lang, "LC_MESSAGES", domain + ".mo")
        if not os.path.exists(path):
            continue
        with open(path, "rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog
        items = []
        for key, value in catalog.items():
            msgid = key[0] if isinstance(key, tuple) else key
            if not msgid or not isinstance(value, str) or not value.strip():
                continue
            items.append((str(msgid), str(key), value))
        items.sort()
        texts += [value for _, _, value in items]
        found.append(path)
    return found, texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output")
    parser.add_argument("--per-language-bytes", type=int, default=400_000,
                        help="at most this many bytes of text per language (0: all)")
    parser.add_argument("--max-bytes", type=int, default=0, help="stop after about this many bytes (0: all)")
    args = parser.parse_args()

    rng = random.Random(20240601)
    emoji = emoji_pool()
    lines, used = [], []
    for lang in LATIN + OTHERS:
        found, texts = messages(lang)
        if not found:
            print(f"warning: no catalogs for {lang}", file=sys.stderr)
            continue
        used += found
        budget = args.per_language_bytes or float("inf")
        for text in texts:
            if budget <= 0:
                break
            text = text.replace("\r\n", "\n").strip()
            if rng.random() < 0.05:
                words = text.split(" ")
                words.insert(rng.randrange(len(words) + 1), rng.choice(emoji))
                text = " ".join(words)
            if lang in LATIN:
                new = [unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text)]
            else:
                new = [text]
            lines += new
            budget -= sum(len(line.encode("utf-8")) + 1 for line in new)
    missing = {lang for lang in LATIN + OTHERS if not any(f"/{lang}/" in path for path in used)}
    if len(missing) > len(LATIN + OTHERS) // 2:
        sys.exit("error: most language catalogs are missing; install coreutils, dpkg, iso-codes, "
                 "libglib2.0-data, libgtk2.0-common, libpam-runtime with their translations")

    data = ("\n".join(lines) + "\n").encode("utf-8")
    if args.max_bytes and len(data) > args.max_bytes:
        cut = data.rfind(b"\n", 0, args.max_bytes) + 1
        data = data[:cut]
    with open(args.output, "wb") as handle:
        handle.write(data)
    print(f"catalogs: {len(used)} from {len(set(p.split('/')[4] for p in used))} languages", file=sys.stderr)
    print(f"wrote {args.output}: {len(data)} bytes, {len(data.decode('utf-8'))} code points, "
          f"sha256 {hashlib.sha256(data).hexdigest()}", file=sys.stderr)


if __name__ == "__main__":
    main()
