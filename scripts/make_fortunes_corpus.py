#!/usr/bin/env python3
"""Builds a multilingual corpus from Debian's fortune packages.

Concatenates the UTF-8 fortune files of fortunes-zh, -de, -cs, -pl, -eo, -es, -it, -ga and -ru
(install them with `apt-get install fortunes-zh fortunes-de ...`), one language after another,
Russian last: a text whose tail is a single language, as real collections often are. About
15 MB and 6,000 distinct characters.

Usage: python3 scripts/make_fortunes_corpus.py OUT.txt [--fortunes /usr/share/games/fortunes]
"""
import argparse
import os
import sys

# (language, files or directories under the fortunes directory), in the order they are written.
LANGUAGES = [
    ("zh", ["chinese", "tang300", "song100"]),
    ("de", ["de"]),
    ("cs", ["cs"]),
    ("pl", ["pl"]),
    ("eo", ["eo"]),
    ("es", ["es"]),
    ("it", ["it"]),
    ("ga", ["ga"]),
    ("ru", ["ru"]),
]


def fortune_files(path):
    """The fortune text files at `path` (a file, or a directory's files), in name order."""
    if os.path.isfile(path):
        return [path]
    names = sorted(os.listdir(path)) if os.path.isdir(path) else []
    files = []
    for name in names:
        full = os.path.join(path, name)
        if name.endswith((".dat", ".u8")) or os.path.islink(full) or not os.path.isfile(full):
            continue
        files.append(full)
    return files


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--fortunes", default="/usr/share/games/fortunes")
    a = p.parse_args()
    total = 0
    with open(a.out, "w", encoding="utf-8") as out:
        for language, parts in LANGUAGES:
            written = 0
            for part in parts:
                for path in fortune_files(os.path.join(a.fortunes, part)):
                    with open(path, "rb") as f:
                        data = f.read()
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        continue  # a few files are in legacy encodings: leave them out
                    text = text.replace("\r\n", "\n")
                    out.write(text if text.endswith("\n") else text + "\n")
                    written += len(text.encode("utf-8"))
            if written == 0:
                print(f"{language}: nothing found (is fortunes-{language} installed?)", file=sys.stderr)
            else:
                print(f"{language}: {written / 1e6:.1f} MB", file=sys.stderr)
            total += written
    print(f"wrote {a.out}: {total / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
