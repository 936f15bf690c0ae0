#!/usr/bin/env bash
# Fetch one corpus of the catalogue (corpora/README.md) and verify its sha256.
#
#   corpora/fetch.sh NAME [--from DIR] [--out DIR]   # prints the path of the verified file
#   corpora/fetch.sh --list                          # prints the catalogue
#
# The file is downloaded (curl or wget), or copied from DIR with --from (for machines
# without internet), into a temporary file next to its destination; it is checked and
# only then renamed into place, so no half or unverified file ever has the final name.
# Archives (enwik8.zip, text8.zip) are checked, then unpacked with unzip or python3, and
# the unpacked file is checked too. A corpus already present and verified is not fetched.
# Errors are one line on stderr and exit status 1 (2 for a bad command line).
set -euo pipefail

PROG=fetch.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "$PROG: $*" >&2; exit 1; }
warn() { echo "$PROG: warning: $*" >&2; }
usage() {  # usage [STATUS]: the synopsis; on stdout for --help, else on stderr
  local status=${1:-2}
  if [ "$status" = 0 ]; then sed -n '4,5s/^#   //p' "${BASH_SOURCE[0]}"
  else sed -n '4,5s/^#   //p' "${BASH_SOURCE[0]}" >&2; fi
  exit "$status"
}

NAMES="tinyshakespeare enwik8 text8 alice pride-and-prejudice les-miserables-1 verwandlung quijote"

# lookup NAME sets: FILE (output name), ALIASES (other names accepted by --from), URL,
# SHA (sha256 of FILE, empty = not pinned), SIZE (bytes of FILE, empty = unknown),
# ARCHIVE / ARCHIVE_SHA (zip downloaded from URL, member FILE), NOTE (printed on mismatch).
lookup() {
  FILE="" ALIASES="" URL="" SHA="" SIZE="" ARCHIVE="" ARCHIVE_SHA="" NOTE=""
  local pg="Project Gutenberg re-issues its files; if upstream changed, check the new file and re-pin it"
  case "$1" in
    tinyshakespeare)
      FILE=tinyshakespeare.txt ALIASES=input.txt SIZE=1115394
      URL=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
      SHA=86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed ;;
    enwik8)
      FILE=enwik8 ALIASES=enwik8.txt SIZE=100000000 URL=http://mattmahoney.net/dc/enwik8.zip
      SHA=2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8
      ARCHIVE=enwik8.zip ARCHIVE_SHA=547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc ;;
    text8)
      FILE=text8 ALIASES=text8.txt SIZE=100000000 URL=http://mattmahoney.net/dc/text8.zip
      SHA=6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7
      ARCHIVE=text8.zip ARCHIVE_SHA=a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232 ;;
    alice)
      FILE=alice.txt ALIASES=pg11.txt SIZE=174311 NOTE=$pg
      URL=https://www.gutenberg.org/cache/epub/11/pg11.txt
      SHA=01b38ea4c710a84bc18d0bd41271a5a1a92b94e97b2812f4dece97d4a694725e ;;
    pride-and-prejudice)  # two different sha256 are published for it: not pinned
      FILE=pride-and-prejudice.txt ALIASES=pg1342.txt NOTE=$pg
      URL=https://www.gutenberg.org/cache/epub/1342/pg1342.txt ;;
    les-miserables-1)
      FILE=les-miserables-1.txt ALIASES=pg17489.txt SIZE=710496 NOTE=$pg
      URL=https://www.gutenberg.org/cache/epub/17489/pg17489.txt
      SHA=a5de514ba7b9f2e1790e7e259c4e8b7a35ae1d29e4bf9a5f8767039c58b80503 ;;
    verwandlung)
      FILE=verwandlung.txt ALIASES=pg22367.txt NOTE=$pg
      URL=https://www.gutenberg.org/cache/epub/22367/pg22367.txt
      SHA=359d3f5983c812393f4bd7ee49a350ffffc7d476015e58d6b84b6c848dd2b0e9 ;;
    quijote)
      FILE=quijote.txt ALIASES=pg2000.txt NOTE=$pg
      URL=https://www.gutenberg.org/cache/epub/2000/pg2000.txt
      SHA=534f41d59f7142163fa0964076ac6351845c006ea6433778be637fac6d5b04d7 ;;
    *) return 1 ;;
  esac
}

list() {
  printf '%-20s %-24s %11s  %-16s %s\n' NAME FILE BYTES SHA256 SOURCE
  local n sum
  for n in $NAMES; do
    lookup "$n"
    sum="not pinned"
    [ -z "$SHA" ] || sum="${SHA:0:12}..."
    printf '%-20s %-24s %11s  %-16s %s\n' "$n" "$FILE" "${SIZE:-?}" "$sum" "$URL"
  done
}

if command -v sha256sum >/dev/null 2>&1; then HASH=(sha256sum)
elif command -v shasum >/dev/null 2>&1; then HASH=(shasum -a 256)
else HASH=(); fi
sha256_of() { "${HASH[@]}" "$1" | cut -d' ' -f1; }

# check FILE EXPECTED WHAT: die on a mismatch; with nothing pinned, say what was computed.
check() {
  local got
  got=$(sha256_of "$1")
  if [ -z "$2" ]; then
    warn "$3: checksum not pinned; its sha256 is $got - check it and pin it in corpora/fetch.sh and corpora/README.md"
  elif [ "$got" != "$2" ]; then
    die "$3: checksum mismatch for $ORIGIN: expected $2, got $got${NOTE:+ ($NOTE)}"
  fi
}

download() {  # download NAME URL FILE: dies with the reason on failure
  local err
  if command -v curl >/dev/null 2>&1; then
    err=$(curl -fsSL --connect-timeout 20 --retry 2 -o "$3" "$2" 2>&1) && return 0
  elif command -v wget >/dev/null 2>&1; then
    err=$(wget -nv --timeout=20 --tries=3 -O "$3" "$2" 2>&1) && return 0
  else
    die "$1: cannot download: neither curl nor wget is installed (or use --from DIR)"
  fi
  die "$1: download of $2 failed (no network? use --from DIR): $(printf '%s\n' "$err" | tail -n 1)"
}

unpack() {  # unpack ZIP MEMBER OUT
  if command -v unzip >/dev/null 2>&1; then
    unzip -p "$1" "$2" > "$3"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$1" "$2" "$3"
  else
    die "need unzip or python3 to unpack $1"
  fi
}

NAME="" FROM="" OUT="$HERE/data"
while [ $# -gt 0 ]; do
  case "$1" in
    --list) list; exit 0 ;;
    --from) [ $# -ge 2 ] || usage; FROM=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "$PROG: unknown option $1" >&2; usage ;;
    *) [ -z "$NAME" ] || usage; NAME=$1; shift ;;
  esac
done
[ -n "$NAME" ] || usage
lookup "$NAME" || die "unknown corpus '$NAME' (known: ${NAMES// /, })"
[ ${#HASH[@]} -gt 0 ] || die "need sha256sum or shasum to verify checksums"
[ -z "$FROM" ] || [ -d "$FROM" ] || die "--from $FROM: no such directory"

mkdir -p "$OUT" || die "cannot create $OUT"
DEST="$OUT/$FILE"

if [ -f "$DEST" ]; then
  if [ -z "$SHA" ]; then
    warn "$NAME: $DEST is already there but cannot be verified (checksum not pinned; its sha256 is $(sha256_of "$DEST"))"
    echo "$DEST"; exit 0
  elif [ "$(sha256_of "$DEST")" = "$SHA" ]; then
    echo "$DEST"; exit 0
  fi
  warn "$NAME: $DEST does not match its checksum; fetching it again"
fi

TMP=$(mktemp "$OUT/.$FILE.XXXXXX") || die "cannot create a temporary file in $OUT"
ZIP=""
trap 'rm -f "$TMP" ${ZIP:+"$ZIP"}' EXIT

src="" ORIGIN=$URL
if [ -n "$FROM" ]; then  # the unpacked file under any of its names, else the archive
  for f in $FILE $ALIASES $ARCHIVE; do
    if [ -f "$FROM/$f" ]; then src=$FROM/$f; break; fi
  done
  set -- $FILE $ALIASES $ARCHIVE
  [ -n "$src" ] || die "$NAME: none of $* is in $FROM"
  ORIGIN=$src
fi

if [ -n "$ARCHIVE" ] && { [ -z "$src" ] || [ "$src" = "$FROM/$ARCHIVE" ]; }; then
  ZIP=$(mktemp "$OUT/.$ARCHIVE.XXXXXX") || die "cannot create a temporary file in $OUT"
  if [ -n "$src" ]; then
    cp "$src" "$ZIP" || die "$NAME: cannot copy $src"
  else
    download "$NAME" "$URL" "$ZIP"
  fi
  check "$ZIP" "$ARCHIVE_SHA" "$ARCHIVE"
  unpack "$ZIP" "$FILE" "$TMP" || die "$NAME: cannot unpack $FILE from $ARCHIVE"
  ORIGIN="$FILE unpacked from $ORIGIN"
elif [ -n "$src" ]; then
  cp "$src" "$TMP" || die "$NAME: cannot copy $src"
else
  download "$NAME" "$URL" "$TMP"
fi

check "$TMP" "$SHA" "$NAME"
chmod 644 "$TMP"
mv -f "$TMP" "$DEST" || die "cannot move the file to $DEST"
echo "$DEST"
